//! The journal: a deployment recorded line by line replays to the same outputs, and a
//! journal that is not one deployment's record is refused with the line that says so.

use bluegreen_core::journal::{JournalEntry, JournalLine, Recorder, ReplayError, replay};
use bluegreen_core::plan::{IdealCloud, example_spec};
use bluegreen_core::{Deployment, DeploymentId, Input, Output, PhaseName, Timestamp};

const START: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const ROUNDS_MAX: usize = 10_000;

/// A whole deployment against the ideal cloud, recorded.
fn recorded() -> Vec<JournalLine> {
    let spec = example_spec();
    let mut cloud = IdealCloud::new(&spec);
    let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec, START);
    let mut rec = Recorder::created(&d, START);
    let mut now = START;
    let mut inbox = vec![Input::Wake];
    for _ in 0..ROUNDS_MAX {
        let mut wake = None;
        for input in std::mem::take(&mut inbox) {
            for out in rec.step(&mut d, now, input) {
                match out {
                    Output::Command(c) => {
                        let result = cloud.respond(&c);
                        inbox.push(Input::CommandDone {
                            id: c.id.clone(),
                            result,
                        });
                    }
                    Output::Idle { wake_at } => wake = wake_at,
                    Output::Notice(_) => {}
                }
            }
        }
        if d.is_terminal() && inbox.is_empty() {
            break;
        }
        if inbox.is_empty() {
            now = wake.expect("a deployment that is not over waits for something");
            inbox.push(Input::Wake);
        }
    }
    assert_eq!(d.phase_name(), PhaseName::Completed);
    let n = rec.lines().len() as u64;
    assert_eq!(
        rec.lines().last().map(|l| l.seq),
        Some(n),
        "one line per seq"
    );
    rec.into_lines()
}

#[test]
fn a_recorded_deployment_replays_to_the_same_outputs() {
    let lines = recorded();
    assert!(
        lines.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "numbered in order"
    );
    let inputs = lines
        .iter()
        .filter(|l| matches!(l.entry, JournalEntry::Input { .. }))
        .count();
    let outputs = lines
        .iter()
        .filter(|l| matches!(l.entry, JournalEntry::Output { .. }))
        .count();
    let report = replay(&lines).unwrap();
    assert_eq!(report.divergence, None);
    assert_eq!(report.final_phase, PhaseName::Completed);
    assert_eq!(
        (report.inputs, report.outputs),
        (inputs as u64, outputs as u64)
    );
    assert_eq!(report.deployment.as_str(), "web-1");
}

#[test]
fn a_journal_that_differs_reports_the_first_line_where_it_does() {
    let mut lines = recorded();
    // The journal says the machine idled where it actually sent a command.
    let at = lines
        .iter()
        .position(|l| {
            matches!(
                &l.entry,
                JournalEntry::Output {
                    output: Output::Command(_)
                }
            )
        })
        .unwrap();
    let seq = lines[at].seq;
    lines[at].entry = JournalEntry::Output {
        output: Output::Idle { wake_at: None },
    };
    let d = replay(&lines).unwrap().divergence.expect("a divergence");
    assert_eq!(d.seq, seq);
    assert_eq!(d.journal, Some(Output::Idle { wake_at: None }));
    assert!(matches!(d.replay, Some(Output::Command(_))));

    // A journal cut short after an input: the replay has outputs the journal lacks.
    let mut lines = recorded();
    let last_input = lines
        .iter()
        .rposition(|l| matches!(l.entry, JournalEntry::Input { .. }))
        .unwrap();
    let input_seq = lines[last_input].seq;
    lines.truncate(last_input + 1);
    let d = replay(&lines).unwrap().divergence.expect("a divergence");
    assert_eq!(
        (d.seq, d.journal.is_none(), d.replay.is_some()),
        (input_seq, true, true)
    );
}

#[test]
fn a_journal_that_is_not_one_deployments_record_is_refused_by_line() {
    let lines = recorded();
    assert_eq!(replay(&[]), Err(ReplayError::Empty));
    assert_eq!(
        replay(&lines[1..]),
        Err(ReplayError::NotCreatedFirst { seq: 2 })
    );
    let mut twice = lines.clone();
    twice[5].entry = lines[0].entry.clone();
    assert_eq!(replay(&twice), Err(ReplayError::NotCreatedFirst { seq: 6 }));
    let mut mixed = lines.clone();
    mixed[3].deployment = DeploymentId::new("web-2").unwrap();
    assert_eq!(
        replay(&mixed),
        Err(ReplayError::MixedDeployments {
            seq: 4,
            expected: "web-1".into(),
            found: "web-2".into()
        })
    );
    let orphan = [lines[0].clone(), lines[2].clone()];
    assert!(matches!(orphan[1].entry, JournalEntry::Output { .. }));
    assert_eq!(replay(&orphan), Err(ReplayError::OrphanOutput { seq: 3 }));
}
