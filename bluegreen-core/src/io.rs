//! What goes into the machine ([`Input`]) and what comes out ([`Output`]).

use core::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandError, CommandResult};
use crate::ids::CommandId;
use crate::time::Timestamp;

/// An input to [`crate::Deployment::handle`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A command's outcome. Results for ids not in flight (duplicates, stale retries) are
    /// ignored.
    CommandDone {
        id: CommandId,
        result: Result<CommandResult, CommandError>,
    },
    /// A timer the machine asked for (`Output::Idle { wake_at }`) expired. Harmless at any
    /// other time.
    Wake,
    /// The executor restarted from a persisted state: commands that were in flight have
    /// no executor any more. Reads are re-issued; writes are resolved by observation
    /// before anything else happens (they may have been applied).
    Restarted,
    /// An operator's request.
    Operator(OperatorRequest),
    /// An alarm changed state, as CloudWatch announced it (EventBridge's "CloudWatch
    /// Alarm State Change"). `ALARM` for an alarm this deployment watches, in a phase
    /// that watches alarms, rolls back now instead of at the next poll; anything else is
    /// recorded and changes nothing (see [`crate::Deployment::alarm_verdict`]).
    Alarm(AlarmEvent),
}

/// One alarm state change from outside the machine's own polling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEvent {
    pub name: String,
    pub state: crate::command::AlarmState,
    /// CloudWatch's `reason` text.
    pub reason: String,
    /// When the state changed (the event's `time`): a late delivery older than the
    /// machine's own last reading of the alarm is stale.
    pub at: Timestamp,
}

/// What an operator can ask of a running deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum OperatorRequest {
    /// Pass the approval gate, or end the current wait (test-traffic hold, shift hold,
    /// bake) early.
    Promote,
    /// Roll back now.
    Abort {
        reason: Option<String>,
    },
    /// Stop forward progress; rollback signals are still watched.
    Pause,
    Resume,
}

impl OperatorRequest {
    pub fn name(&self) -> &'static str {
        match self {
            OperatorRequest::Promote => "promote",
            OperatorRequest::Abort { .. } => "abort",
            OperatorRequest::Pause => "pause",
            OperatorRequest::Resume => "resume",
        }
    }
}

/// An operator request the current phase does not allow (HTTP 409).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("cannot {request} in phase {phase}: {reason}")]
pub struct Refused {
    pub request: String,
    pub phase: PhaseName,
    pub reason: String,
}

/// An output of [`crate::Deployment::poll`]. Drain until `Idle`.
#[must_use = "outputs must be drained: commands executed, notices recorded"]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum Output {
    /// Perform this, then report with `Input::CommandDone`. Shared with the machine's
    /// in-flight table (it re-sends or resolves from there), so handing it out moves a
    /// pointer; read it through the `Arc`, or `Arc::unwrap_or_clone` to own it.
    Command(Arc<Command>),
    /// Something worth recording (journal, log, metrics).
    Notice(Notice),
    /// Nothing to do until `wake_at` (or until a command result or operator request
    /// arrives). `None`: the deployment is over.
    Idle { wake_at: Option<Timestamp> },
}

/// Things that happened inside the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    Transition(Transition),
    /// A command failed retryably and will be sent again at `at`.
    Retrying {
        id: CommandId,
        attempt: u32,
        at: Timestamp,
        error: CommandError,
    },
    /// A write's outcome is unknown; it is being resolved by observation.
    Resolving {
        id: CommandId,
        error: CommandError,
    },
    /// A hook answered.
    HookAnswered {
        name: String,
        verdict: crate::command::HookVerdict,
    },
    /// A rollback hook failed or could not be reached; the rollback goes on.
    RollbackHookFailed {
        name: String,
        reason: String,
    },
    /// Operator request accepted.
    Operator {
        request: OperatorRequest,
    },
    /// An alarm event arrived; `rolled_back` says whether it started the rollback, else
    /// `ignored` says why not.
    AlarmEvent {
        name: String,
        state: crate::command::AlarmState,
        at: Timestamp,
        rolled_back: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ignored: Option<String>,
    },
}

/// A phase change, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Timestamp,
    pub from: PhaseName,
    pub to: PhaseName,
    pub reason: String,
}

/// The phases without their data — for display, metrics labels and guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseName {
    Preflight,
    CreateGreen,
    Deploy,
    HealthCheck,
    TestTraffic,
    Approval,
    Shift,
    Bake,
    DrainBlue,
    Paused,
    Rollback,
    Completed,
    RolledBack,
    Failed,
    Rejected,
}

impl PhaseName {
    pub const ALL: [PhaseName; 15] = [
        PhaseName::Preflight,
        PhaseName::CreateGreen,
        PhaseName::Deploy,
        PhaseName::HealthCheck,
        PhaseName::TestTraffic,
        PhaseName::Approval,
        PhaseName::Shift,
        PhaseName::Bake,
        PhaseName::DrainBlue,
        PhaseName::Paused,
        PhaseName::Rollback,
        PhaseName::Completed,
        PhaseName::RolledBack,
        PhaseName::Failed,
        PhaseName::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Preflight => "preflight",
            PhaseName::CreateGreen => "create-green",
            PhaseName::Deploy => "deploy",
            PhaseName::HealthCheck => "health-check",
            PhaseName::TestTraffic => "test-traffic",
            PhaseName::Approval => "approval",
            PhaseName::Shift => "shift",
            PhaseName::Bake => "bake",
            PhaseName::DrainBlue => "drain-blue",
            PhaseName::Paused => "paused",
            PhaseName::Rollback => "rollback",
            PhaseName::Completed => "completed",
            PhaseName::RolledBack => "rolled-back",
            PhaseName::Failed => "failed",
            PhaseName::Rejected => "rejected",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PhaseName::Completed | PhaseName::RolledBack | PhaseName::Failed | PhaseName::Rejected
        )
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a deployment rolled back, failed or was rejected: a kind (stable, for metrics
/// labels) and a sentence for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    pub detail: String,
}

impl Reason {
    pub fn new(kind: ReasonKind, detail: impl Into<String>) -> Self {
        Reason {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

/// Reason kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonKind {
    /// ECS tasks of green kept failing.
    CircuitBreaker,
    /// Green's targets never became healthy, or lost health.
    Unhealthy,
    Alarm,
    Metric,
    Hook,
    Timeout,
    Aborted,
    /// A command failed fatally.
    CommandFailed,
    /// A command kept failing retryably.
    RetriesExhausted,
    /// The listener was not at rest (e.g. 90/10) or forwards elsewhere.
    ListenerNotAtRest,
    /// Preflight found a missing or mismatched resource.
    Preflight,
    /// The machine caught itself about to break an invariant.
    Invariant,
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::CircuitBreaker => "circuit-breaker",
            ReasonKind::Unhealthy => "unhealthy",
            ReasonKind::Alarm => "alarm",
            ReasonKind::Metric => "metric",
            ReasonKind::Hook => "hook",
            ReasonKind::Timeout => "timeout",
            ReasonKind::Aborted => "aborted",
            ReasonKind::CommandFailed => "command-failed",
            ReasonKind::RetriesExhausted => "retries-exhausted",
            ReasonKind::ListenerNotAtRest => "listener-not-at-rest",
            ReasonKind::Preflight => "preflight",
            ReasonKind::Invariant => "invariant",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_kind_reads_as_its_json_name_and_a_reason_as_kind_then_detail() {
        use ReasonKind as K;
        for kind in [
            K::CircuitBreaker,
            K::Unhealthy,
            K::Alarm,
            K::Metric,
            K::Hook,
            K::Timeout,
            K::Aborted,
            K::CommandFailed,
            K::RetriesExhausted,
            K::ListenerNotAtRest,
            K::Preflight,
            K::Invariant,
        ] {
            // Metrics labels and the API's JSON use the same words.
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert_eq!(
            Reason::new(ReasonKind::Timeout, "green not steady within 20m").to_string(),
            "timeout: green not steady within 20m"
        );
    }
}
