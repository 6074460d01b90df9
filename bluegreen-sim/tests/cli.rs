//! The `bluegreen-sim` binary: a seed runs twice with identical traces and exits 0; a
//! sweep prints its summary; a journal replays; a tampered journal exits non-zero.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bluegreen-sim"))
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn run_seed_traces_one_line_per_event_and_checks_determinism() {
    let o = bin()
        .args(["run", "--seed", "6", "--profile", "fast", "--trace"])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("determinism: ran twice, identical traces"),
        "{out}"
    );
    assert!(
        out.lines().filter(|l| l.contains(" send ")).count() > 20,
        "{out}"
    );
}

#[test]
fn run_seeds_prints_the_summary() {
    let o = bin()
        .args(["run", "--seeds", "24", "--jobs", "2"])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "seeds: 24",
        "outcomes:",
        "rollbacks by reason:",
        "simulated time:",
        "calls vs plan lower bound",
        "wall time:",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

#[test]
fn replay_accepts_its_own_journal_and_rejects_a_tampered_one() {
    let dir = std::env::temp_dir().join(format!("bluegreen-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("journal.jsonl");
    let o = bin()
        .args(["run", "--seed", "6", "--profile", "fast", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin().arg("replay").arg(&journal).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("identical decisions"));
    let tampered =
        std::fs::read_to_string(&journal)
            .unwrap()
            .replacen("\"attempt\":1", "\"attempt\":2", 1);
    let bad = dir.join("tampered.jsonl");
    std::fs::write(&bad, tampered).unwrap();
    let o = bin().arg("replay").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FIRST DIFFERENT DECISION"));
    let o = bin()
        .args(["run", "--seed", "1", "--profile", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}
