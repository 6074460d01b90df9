//! `replay`: a journal written while driving the machine (core's protocol) re-drives a
//! fresh machine to identical decisions — crashes and restarts included — and a journal
//! that a different build (here: a tampered line or spec) would decide differently on is
//! reported at the first differing decision.

use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::{Output, Timestamp};
use bluegreen_sim::harness::{AppPlan, app_draft};
use bluegreen_sim::replay::{JournalFileError, describe, parse, replay_all, to_json_lines};
use bluegreen_sim::{Profile, Scenario, Sim, SimOptions, WorldProfile};

fn journals(seed: u64, profile: Profile) -> Vec<Vec<JournalLine>> {
    let opts = SimOptions {
        journal: true,
        ..SimOptions::default()
    };
    let r = Sim::run_seed(seed, profile, opts);
    assert!(r.ok(), "{:#?}", r.violations);
    r.journals
}

#[test]
fn journals_of_a_faulty_run_replay_to_identical_decisions() {
    // Seed 3 under the aws profile has crashes, lost answers and retries.
    for (seed, profile) in [(3, Profile::Aws), (6, Profile::Fast), (7, Profile::Storm)] {
        let js = journals(seed, profile);
        assert!(!js.is_empty());
        let all: Vec<JournalLine> = js.into_iter().flatten().collect();
        let text = to_json_lines(&all);
        let reports = replay_all(parse(&text).unwrap()).unwrap();
        for r in &reports {
            assert!(r.divergence.is_none(), "{}", describe(r));
            assert!(r.final_phase.is_terminal());
        }
    }
}

#[test]
fn a_journal_with_a_crash_and_restart_replays_identically() {
    let mut s = Scenario::quiet(1, WorldProfile::fast());
    s.apps.push(AppPlan::new(
        app_draft("web"),
        &[(0, "registry.example/web:v2")],
    ));
    let opts = SimOptions {
        journal: true,
        ..SimOptions::default()
    };
    let mut sim = Sim::new(s, opts);
    sim.crash_on_answer_to(0, "/shift-0");
    let r = sim.run();
    assert_eq!(r.deployments[0].crashes, 1);
    let lines = r.journals[0].clone();
    assert!(lines.iter().any(|l| matches!(
        &l.entry,
        JournalEntry::Input {
            input: bluegreen_core::Input::Restarted
        }
    )));
    let reports = replay_all(lines).unwrap();
    assert!(reports[0].divergence.is_none(), "{}", describe(&reports[0]));
}

#[test]
fn a_changed_decision_is_reported_at_its_journal_line() {
    let mut lines = journals(6, Profile::Fast).remove(0);
    // Pretend the recorded build asked to wake a second later at its 5th idle.
    let (i, seq) = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            matches!(
                l.entry,
                JournalEntry::Output {
                    output: Output::Idle { wake_at: Some(_) }
                }
            )
        })
        .map(|(i, l)| (i, l.seq))
        .nth(4)
        .expect("a few wake-ups");
    if let JournalEntry::Output {
        output: Output::Idle { wake_at: Some(t) },
    } = &mut lines[i].entry
    {
        *t = t.plus_ms(1_000);
    }
    let r = &replay_all(lines).unwrap()[0];
    let d = r.divergence.as_ref().expect("the change is found");
    assert_eq!(d.seq, seq);
    assert!(describe(r).contains("FIRST DIFFERENT DECISION"));
}

#[test]
fn a_different_spec_is_reported_at_the_first_decision_it_changes() {
    let mut lines = journals(6, Profile::Fast).remove(0);
    if let JournalEntry::Created { spec } = &mut lines[0].entry {
        let mut d = spec.draft().clone();
        d.pacing.poll_interval_ms += 1_000;
        **spec = bluegreen_core::DeploymentSpec::new(d).unwrap();
    }
    let r = &replay_all(lines).unwrap()[0];
    assert!(r.divergence.is_some(), "a slower poll decides differently");
}

#[test]
fn bad_journal_lines_name_the_line() {
    let good = to_json_lines(&journals(6, Profile::Fast)[0][..2]);
    let text = format!("{good}\n{{\"deployment\": 1}}\n");
    match parse(&text) {
        Err(JournalFileError::Parse { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse("\n\n"), Err(JournalFileError::Empty));
    let orphan = JournalLine {
        deployment: bluegreen_core::DeploymentId::new("x").unwrap(),
        seq: 1,
        at: Timestamp::EPOCH,
        entry: JournalEntry::Output {
            output: Output::Idle { wake_at: None },
        },
    };
    assert!(matches!(
        replay_all(vec![orphan]),
        Err(JournalFileError::Replay { .. })
    ));
}
