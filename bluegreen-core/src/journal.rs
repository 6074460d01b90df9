//! The journal: one JSON line per input and output of the machine, enough to re-drive a
//! deployment through a newer build and see where it would decide differently.
//!
//! The protocol a runner follows (and [`replay`] assumes):
//! 1. `Created { spec }` when the deployment is made with [`Deployment::new`] at `at`;
//! 2. for every call into the machine: an `Input` line, then `handle(at, input)`, then
//!    one `Output` line per `poll(at)` until (and including) the `Idle` output.
//!
//! Every line carries the deployment id, a per-deployment sequence number and the time the
//! runner handed the machine.

use serde::{Deserialize, Serialize};

use crate::ids::DeploymentId;
use crate::io::{Input, Output};
use crate::machine::Deployment;
use crate::spec::DeploymentSpec;
use crate::time::Timestamp;

/// Bound on outputs drained per input during replay (a runaway machine is reported, not
/// looped on forever).
pub const OUTPUTS_PER_INPUT_MAX: usize = 1_000;

/// One journal line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    pub deployment: DeploymentId,
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub entry: JournalEntry,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum JournalEntry {
    Created { spec: Box<DeploymentSpec> },
    Input { input: Input },
    Output { output: Output },
}

/// Where a replay first decided differently from the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Sequence number of the journal line that differs (or of the input after which the
    /// replay produced an output the journal does not have).
    pub seq: u64,
    pub at: Timestamp,
    pub journal: Option<Output>,
    pub replay: Option<Output>,
}

/// The result of replaying one deployment's journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub deployment: DeploymentId,
    pub inputs: u64,
    pub outputs: u64,
    pub divergence: Option<Divergence>,
    /// The replayed machine's phase at the end.
    pub final_phase: crate::io::PhaseName,
}

/// Why a journal could not be replayed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("journal is empty")]
    Empty,
    #[error("line {seq}: the first line must be `created`")]
    NotCreatedFirst { seq: u64 },
    #[error("line {seq}: belongs to deployment {found}, expected {expected}")]
    MixedDeployments {
        seq: u64,
        expected: String,
        found: String,
    },
    #[error("line {seq}: output without a preceding input")]
    OrphanOutput { seq: u64 },
}

/// Re-drive a fresh machine from the journal of one deployment and report the first
/// output that differs. Lines must be in `seq` order.
pub fn replay(lines: &[JournalLine]) -> Result<ReplayReport, ReplayError> {
    let first = lines.first().ok_or(ReplayError::Empty)?;
    let JournalEntry::Created { spec } = &first.entry else {
        return Err(ReplayError::NotCreatedFirst { seq: first.seq });
    };
    let mut machine = Deployment::new(first.deployment.clone(), (**spec).clone(), first.at);
    let mut inputs = 0;
    let mut outputs = 0;
    // Outputs the replayed machine produced for the current input, compared one by one
    // with the journal's output lines that follow that input.
    let mut pending: std::collections::VecDeque<Output> = Default::default();
    let mut last_input: Option<(u64, Timestamp)> = None;
    for line in &lines[1..] {
        if line.deployment != first.deployment {
            return Err(ReplayError::MixedDeployments {
                seq: line.seq,
                expected: first.deployment.to_string(),
                found: line.deployment.to_string(),
            });
        }
        match &line.entry {
            JournalEntry::Created { .. } => {
                return Err(ReplayError::NotCreatedFirst { seq: line.seq });
            }
            JournalEntry::Input { input } => {
                if let Some(extra) = pending.pop_front() {
                    let (seq, at) = last_input.unwrap_or((line.seq, line.at));
                    return Ok(diverged(
                        &machine,
                        first,
                        inputs,
                        outputs,
                        seq,
                        at,
                        None,
                        Some(extra),
                    ));
                }
                inputs += 1;
                last_input = Some((line.seq, line.at));
                // A refused operator request is part of the record, not an error.
                let _ = machine.handle(line.at, input.clone());
                for _ in 0..OUTPUTS_PER_INPUT_MAX {
                    let out = machine.poll(line.at);
                    let idle = matches!(out, Output::Idle { .. });
                    pending.push_back(out);
                    if idle {
                        break;
                    }
                }
            }
            JournalEntry::Output { output } => {
                if last_input.is_none() {
                    return Err(ReplayError::OrphanOutput { seq: line.seq });
                }
                outputs += 1;
                let ours = pending.pop_front();
                if ours.as_ref() != Some(output) {
                    return Ok(diverged(
                        &machine,
                        first,
                        inputs,
                        outputs,
                        line.seq,
                        line.at,
                        Some(output.clone()),
                        ours,
                    ));
                }
            }
        }
    }
    if let Some(extra) = pending.pop_front() {
        let (seq, at) = last_input.unwrap_or((first.seq, first.at));
        return Ok(diverged(
            &machine,
            first,
            inputs,
            outputs,
            seq,
            at,
            None,
            Some(extra),
        ));
    }
    Ok(ReplayReport {
        deployment: first.deployment.clone(),
        inputs,
        outputs,
        divergence: None,
        final_phase: machine.phase_name(),
    })
}

#[allow(clippy::too_many_arguments)]
fn diverged(
    machine: &Deployment,
    first: &JournalLine,
    inputs: u64,
    outputs: u64,
    seq: u64,
    at: Timestamp,
    journal: Option<Output>,
    replay: Option<Output>,
) -> ReplayReport {
    ReplayReport {
        deployment: first.deployment.clone(),
        inputs,
        outputs,
        divergence: Some(Divergence {
            seq,
            at,
            journal,
            replay,
        }),
        final_phase: machine.phase_name(),
    }
}

/// A helper for runners and tests: records the journal lines of one deployment while
/// driving it, following the protocol above.
#[derive(Debug)]
pub struct Recorder {
    deployment: DeploymentId,
    seq: u64,
    lines: Vec<JournalLine>,
}

impl Recorder {
    pub fn created(machine: &Deployment, at: Timestamp) -> Self {
        let mut r = Recorder {
            deployment: machine.id().clone(),
            seq: 0,
            lines: Vec::new(),
        };
        r.push(
            at,
            JournalEntry::Created {
                spec: Box::new(machine.spec().clone()),
            },
        );
        r
    }

    pub fn push(&mut self, at: Timestamp, entry: JournalEntry) -> &JournalLine {
        self.seq += 1;
        self.lines.push(JournalLine {
            deployment: self.deployment.clone(),
            seq: self.seq,
            at,
            entry,
        });
        self.lines.last().expect("just pushed")
    }

    /// Journal the input, hand it to the machine, drain and journal its outputs; returns
    /// the outputs (the last is `Idle`).
    pub fn step(&mut self, machine: &mut Deployment, at: Timestamp, input: Input) -> Vec<Output> {
        self.push(
            at,
            JournalEntry::Input {
                input: input.clone(),
            },
        );
        let _ = machine.handle(at, input);
        let mut outs = Vec::new();
        for _ in 0..OUTPUTS_PER_INPUT_MAX {
            let out = machine.poll(at);
            self.push(
                at,
                JournalEntry::Output {
                    output: out.clone(),
                },
            );
            let idle = matches!(out, Output::Idle { .. });
            outs.push(out);
            if idle {
                break;
            }
        }
        outs
    }

    pub fn lines(&self) -> &[JournalLine] {
        &self.lines
    }

    pub fn into_lines(self) -> Vec<JournalLine> {
        self.lines
    }
}
