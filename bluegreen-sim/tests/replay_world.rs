//! `replay --world` on the simulator's own journals: a run's journals, rebuilt as a
//! world and run again by this build, decide as recorded on every seed — including an
//! operator's pause and resume anchored to the same visit of the same phase — and a
//! journal without its spec is refused with a reason.

use bluegreen_sim::replay_world::replay_file;
use bluegreen_sim::{Profile, Sim, SimOptions, WorldProfile};

fn journal_text(seed: u64, profile: Profile) -> String {
    let options = SimOptions {
        journal: true,
        ..SimOptions::default()
    };
    let report = Sim::run_seed(seed, profile, options);
    assert!(report.ok(), "seed {seed}: {:?}", report.violations);
    report
        .journals
        .iter()
        .flatten()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_runs_journals_replayed_in_the_world_decide_as_recorded() {
    // Seed 19 (aws): an approval with a pause and a resume, a metric rollback, a
    // timeout; seed 13: two rollbacks among five deployments.
    for seed in [13, 19] {
        let text = journal_text(seed, Profile::Aws);
        let replays = replay_file(&text, 3, &WorldProfile::aws()).unwrap();
        assert!(replays.len() >= 2, "seed {seed}: several deployments");
        for r in &replays {
            assert!(
                r.same_everywhere(),
                "seed {seed}: {r}\nreproduce: cargo run -p bluegreen-sim -- run --seed {seed} --profile aws --journal j.jsonl && cargo run -p bluegreen-sim -- replay j.jsonl --world --seeds 3"
            );
        }
    }
}

#[test]
fn a_journal_without_its_spec_is_refused() {
    let text = journal_text(13, Profile::Aws);
    let without: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(r#""entry":"created""#))
        .collect();
    let err = replay_file(&without.join("\n"), 1, &WorldProfile::aws()).unwrap_err();
    assert!(err.contains("no Created line"), "{err}");
}
