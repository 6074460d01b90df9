//! Effects as values: what the machine asks an executor to do, and what comes back.
//!
//! Writes are stated as desired state wherever AWS allows it (`SetListenerWeights`,
//! `ScaleEnvironment`), so executing one twice is harmless; creates carry a [`CommandId`]
//! whose [`CommandId::client_token`] makes them idempotent at AWS.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::CommandId;
use crate::name::Name;
use crate::spec::{HookStage, ListenerRef, Mode};
use crate::time::Timestamp;

/// One effect the executor must perform.
#[must_use = "a command does nothing until an executor performs it"]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    /// 1 on the first try; retries of the same step keep the id and count up.
    pub attempt: u32,
    pub kind: CommandKind,
}

/// The effects. Executors implement every variant; see `docs/commands.md` for the AWS
/// calls each maps to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandKind {
    /// Check that every resource the deployment names exists and fits together (else `Fatal`,
    /// naming it). Boxed, as `CallHook` is: both are rare, and inline made commands 184 bytes.
    Preflight(Box<Preflight>),
    /// Find the revision green should run without registering anything: `base` itself
    /// when its `container` already runs exactly `image` (redeploying the live image),
    /// else a revision that [`CommandKind::RegisterTaskDefinition`] with the same fields
    /// registered before (so one image gets one revision per base, across retries,
    /// crashes and deployments). Executors tag what they register with `bluegreen:base`
    /// and `bluegreen:image` and match on those tags within `base`'s family.
    FindTaskDefinition {
        base: Name,
        container: Name,
        image: Name,
    },
    /// Register a new revision copied from `base` with only `container`'s image replaced,
    /// tagged `bluegreen:base = base`, `bluegreen:image = image`.
    RegisterTaskDefinition {
        base: Name,
        container: Name,
        image: Name,
    },
    /// Bring green up on its target group running `task_definition`.
    EnsureGreen(EnsureGreen),
    /// Set a service's desired count (service-pair model).
    ScaleEnvironment {
        cluster: Name,
        service: Name,
        desired_count: u32,
    },
    /// Delete a task set (task-set model). Deleting one that is already gone succeeds.
    DeleteEnvironment {
        cluster: Name,
        service: Name,
        task_set: Name,
    },
    /// Make the listener (default action, or rule) forward with exactly these weights,
    /// then read it back and return what AWS holds.
    SetListenerWeights {
        listener: ListenerRef,
        weights: Vec<TargetWeight>,
    },
    /// Task-set model: make `task_set` (an ARN) the service's primary.
    SetPrimaryTaskSet {
        cluster: Name,
        service: Name,
        task_set: Name,
    },
    /// After an outcome, say which slot is live on both slots' target groups (tags
    /// `bluegreen:live` = `true`/`false`, `bluegreen:slot` = `a`/`b`,
    /// `bluegreen:deployment`, `bluegreen:outcome`), for IaC and people. Informational:
    /// the service sends it once a deployment has ended, best effort; the machine never
    /// issues it and never reads tags back (the listener is the truth).
    TagSlots {
        target_groups: [Name; 2],
        live_slot: usize,
        deployment: Name,
        outcome: Name,
    },
    /// Service pair: put the app's Application Auto Scaling scalable target (namespace
    /// `ecs`, dimension `ecs:service:DesiredCount`) and its scaling policies on
    /// `services[live_slot]`, moving them from the other slot's service if they are
    /// there; nothing registered on either slot is nothing to do. Desired state, so
    /// sending it twice is harmless. Like `TagSlots`, the machine never issues it: the
    /// service sends it when a shift completes (green live), when a rollback starts and
    /// at the outcome ([`crate::Deployment::scaling_placement`]).
    PlaceScaling {
        cluster: Name,
        services: [Name; 2],
        live_slot: usize,
    },
    /// Read some state. Reads never change anything and are retried freely.
    Observe(Observe),
    /// Call a user's HTTP hook.
    CallHook(Box<HookCall>),
}

/// What preflight checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub cluster: Name,
    pub mode: Mode,
    /// Service-pair: both slots, `services[i]` must be bound to `target_groups[i]`.
    /// Task-set: the one service, which must use the `EXTERNAL` deployment controller.
    pub services: Vec<Name>,
    pub target_groups: [Name; 2],
    pub listener: ListenerRef,
    pub test_listener: Option<ListenerRef>,
    /// Must be a container of the live task definition.
    pub container: Name,
}

/// How green is brought up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum EnsureGreen {
    /// Update the idle slot's service to `task_definition` and `desired_count`
    /// (`UpdateService`; idempotent as desired state).
    Service {
        cluster: Name,
        service: Name,
        task_definition: Name,
        desired_count: u32,
    },
    /// Create a task set at 100 % scale on `target_group`, copying network
    /// configuration, launch type and container port from `like_task_set` (blue's).
    /// `external_id` (the deployment id) marks it as ours; the command id's client token
    /// makes the create idempotent.
    TaskSet {
        cluster: Name,
        service: Name,
        task_definition: Name,
        target_group: Name,
        like_task_set: Name,
        external_id: Name,
    },
}

/// One weighted forward target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetWeight {
    pub target_group: Name,
    /// ALB weight, 0–999; the machine uses percentages (0–100).
    pub weight: u32,
}

/// Reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Observe {
    Listener(ListenerRef),
    /// A service, its task sets, and (when `failures` is set) how many tasks of a
    /// task definition stopped by failure since a time — the circuit breaker's count.
    /// `also`: a second service of the same cluster read in the same `DescribeServices`
    /// call (it takes up to ten) — the monitor reads blue, which green follows, in
    /// green's call; its status comes back in [`ServiceStatus::also`].
    Service {
        cluster: Name,
        service: Name,
        failures: Option<FailureFilter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        also: Option<Name>,
    },
    TargetHealth {
        target_group: Name,
    },
    /// Current state of these alarms (executors batch 100 names per call).
    Alarms {
        names: std::sync::Arc<[Name]>,
    },
    Metrics(MetricRequest),
}

/// Which stopped tasks count as failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureFilter {
    pub task_definition: Name,
    /// Only tasks that stopped at or after this time.
    pub since: Timestamp,
    /// Task-set model: only tasks started by this task set (its id or ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<Name>,
}

/// A `GetMetricData` request over `[start, end)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRequest {
    pub start: Timestamp,
    pub end: Timestamp,
    pub queries: Vec<MetricQuery>,
}

/// One metric-stat query. Ids are unique within a request and are `[a-z][a-zA-Z0-9_]*`
/// as CloudWatch requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricQuery {
    pub id: String,
    pub namespace: Name,
    pub metric_name: Name,
    pub dimensions: Vec<(Name, Name)>,
    pub stat: Name,
    pub period_s: u32,
}

/// A hook call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookCall {
    pub name: Name,
    pub url: Name,
    pub timeout_ms: u64,
    pub payload: HookPayload,
}

/// The JSON body a hook receives (the executor signs it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookPayload {
    pub deployment: Name,
    pub app: Name,
    pub stage: HookStage,
    pub image: Option<Name>,
    pub task_definition: Option<Name>,
    pub weights: Weights,
    /// Green's target group, so a hook can address green directly.
    pub green_target_group: Option<Name>,
    /// 1-based count of calls to this hook in this deployment.
    pub call: u32,
}

/// Production weights in percent, blue + green = 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weights {
    pub blue: u8,
    pub green: u8,
}

impl Weights {
    pub const ALL_BLUE: Weights = Weights {
        blue: 100,
        green: 0,
    };
    pub const ALL_GREEN: Weights = Weights {
        blue: 0,
        green: 100,
    };

    pub const fn green(percent: u8) -> Weights {
        Weights {
            blue: 100 - percent,
            green: percent,
        }
    }
}

/// What a successful command returns. Each command kind has exactly one matching result
/// kind; a mismatch is treated as a bad response (`Fatal`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandResult {
    PreflightPassed,
    TaskDefinitionFound {
        arn: Option<Name>,
    },
    TaskDefinitionRegistered {
        arn: Name,
    },
    /// The green environment; for task sets, the created (or found) task set's ARN.
    GreenEnsured {
        task_set: Option<Name>,
    },
    Scaled,
    Deleted,
    /// What the listener holds after the write (the executor reads it back).
    WeightsSet(ListenerState),
    PrimarySet,
    Tagged,
    /// The scalable target is on the live slot's service (`moved`: it was moved there
    /// now; `false` also when no scalable target exists).
    ScalingPlaced {
        moved: bool,
    },
    Observed(Observation),
    Hook(HookVerdict),
}

/// Observed state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Observation {
    Listener(ListenerState),
    /// Boxed: a service's status is by far the largest observation, and inline it made
    /// every result and every `Input` carrying one ~160 bytes to move.
    Service(Box<ServiceStatus>),
    TargetHealth(TargetHealth),
    Alarms(AlarmStates),
    Metrics(MetricData),
}

/// A listener's forward action as AWS holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerState {
    /// Every target group the action forwards to with its weight (weight 0 included).
    /// Empty when the action is not a forward (e.g. a fixed response or redirect).
    pub forwards: Vec<TargetWeight>,
}

impl ListenerState {
    pub fn weight_of(&self, target_group: &str) -> u32 {
        self.forwards
            .iter()
            .filter(|f| f.target_group == target_group)
            .map(|f| f.weight)
            .sum()
    }

    pub fn total_weight(&self) -> u32 {
        self.forwards.iter().map(|f| f.weight).sum()
    }
}

/// An ECS service as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: Name,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: Name,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// The service's task definition (service-pair model); empty for `EXTERNAL`.
    pub task_definition: Name,
    /// Target groups the service is bound to (shared: a reader answers every look with
    /// the same list, so a read clones a pointer, not a vector).
    pub target_groups: Arc<[Name]>,
    pub task_sets: Vec<TaskSetStatus>,
    /// Tasks matching the request's `FailureFilter` that stopped by failure.
    pub failed_tasks: u32,
    /// The read's `also` service, read in the same call (its `failed_tasks` is 0: the
    /// filter is for the first service only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also: Option<Box<ServiceStatus>>,
}

/// A task set as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSetStatus {
    pub id: Name,
    pub arn: Name,
    /// `PRIMARY`, `ACTIVE` or `DRAINING`.
    pub status: Name,
    pub external_id: Option<Name>,
    pub task_definition: Name,
    pub target_groups: Arc<[Name]>,
    pub computed_desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// `STEADY_STATE` or `STABILIZING`.
    pub stability_status: Name,
}

/// Target health of one target group: counts by state, and why the targets that are
/// not healthy are not (ELBv2's reason code and description, grouped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub healthy: u32,
    pub unhealthy: u32,
    pub initial: u32,
    pub draining: u32,
    /// `unused`, `unavailable` and any other state.
    pub other: u32,
    /// Reasons given for targets that are not healthy, at most
    /// [`TargetHealth::REASONS_MAX`] distinct ones (the counts above stay exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<TargetReason>,
}

/// Why some targets of a group are not healthy, as ELBv2 says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReason {
    /// The target's state: `unhealthy`, `initial`, `draining`, `unused`, `unavailable`.
    pub state: Cow<'static, str>,
    /// ELBv2's reason code, e.g. `Target.ResponseCodeMismatch`.
    pub reason: Cow<'static, str>,
    /// ELBv2's description, e.g. "Health checks failed with these codes: [502]".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'static, str>>,
    /// How many targets give this reason.
    pub targets: u32,
}

impl TargetHealth {
    /// A bound on distinct reasons kept: a group of a thousand failing targets still
    /// makes a small observation.
    pub const REASONS_MAX: usize = 8;
    /// A bound on a description's length, in bytes (AWS text is not ours to trust).
    pub const DESCRIPTION_BYTES_MAX: usize = 256;

    pub fn total(&self) -> u32 {
        self.healthy + self.unhealthy + self.initial + self.draining + self.other
    }

    /// Counts `targets` targets with a reason; equal (state, reason, description) are
    /// grouped. Past [`Self::REASONS_MAX`] distinct reasons a new one is dropped.
    pub fn note_reason(
        &mut self,
        state: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
        description: Option<Cow<'static, str>>,
        targets: u32,
    ) {
        if targets == 0 {
            return;
        }
        let (state, reason) = (state.into(), reason.into());
        let description = description.map(|d| {
            if d.len() <= Self::DESCRIPTION_BYTES_MAX {
                return d;
            }
            let mut end = Self::DESCRIPTION_BYTES_MAX;
            while !d.is_char_boundary(end) {
                end -= 1;
            }
            Cow::Owned(d[..end].to_string())
        });
        if let Some(r) = self
            .reasons
            .iter_mut()
            .find(|r| r.state == state && r.reason == reason && r.description == description)
        {
            r.targets = r.targets.saturating_add(targets);
        } else if self.reasons.len() < Self::REASONS_MAX {
            self.reasons.push(TargetReason {
                state,
                reason,
                description,
                targets,
            });
        }
    }

    /// "0 healthy, 2 unhealthy (2× Target.ResponseCodeMismatch: Health checks failed
    /// with these codes: [502])" — every state present, with its reasons.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} healthy", self.healthy)];
        for (n, what) in [
            (self.unhealthy, "unhealthy"),
            (self.initial, "initial"),
            (self.draining, "draining"),
            (self.other, "unused/unavailable"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mut s = parts.join(", ");
        if !self.reasons.is_empty() {
            let why: Vec<String> = self
                .reasons
                .iter()
                .map(|r| match &r.description {
                    Some(d) => format!("{}× {}: {d}", r.targets, r.reason),
                    None => format!("{}× {}", r.targets, r.reason),
                })
                .collect();
            s.push_str(&format!(" ({})", why.join("; ")));
        }
        s
    }
}

/// Alarm states; alarms that do not exist are listed in `missing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmStates {
    pub alarms: Vec<AlarmObservation>,
    pub missing: Vec<Name>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmObservation {
    pub name: Name,
    pub state: AlarmState,
    /// CloudWatch's `StateReason` (a [`Name`]: a reader answering the same reason at
    /// every look shares one text instead of allocating it each time).
    pub reason: Name,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

/// `GetMetricData` results by query id; values oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricData {
    pub series: Vec<MetricSeries>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub id: String,
    pub values: Vec<f64>,
}

/// A hook's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum HookVerdict {
    Pass,
    Fail {
        reason: String,
    },
    /// Ask again after the hook's interval.
    NotYet,
}

/// Why a command did not succeed, classified for the machine's error policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{class:?} {code}: {message}")]
pub struct CommandError {
    pub class: ErrorClass,
    /// The provider's error code (e.g. `ThrottlingException`, `ServiceNotFoundException`),
    /// or our own (`Timeout`, `BadResponse`).
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, code, message)
    }
    pub fn throttled(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Throttled, code, message)
    }
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, code, message)
    }
    pub fn ambiguous(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Ambiguous, code, message)
    }
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        CommandError {
            class,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The error policy's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Not applied; try again later (throttled, 5xx, connection refused).
    Retryable,
    /// Will not succeed by retrying (invalid, access denied, not found where it must exist).
    Fatal,
    /// A write whose outcome is unknown (response lost, timed out after sending): the
    /// machine observes before it decides anything else.
    Ambiguous,
    /// Not applied: the account's API rate was spent (AWS throttled the call, or the
    /// service's own API budget held it and answered it unsent). Retried like
    /// `Retryable`, on a longer leash: a busy account is not a broken deployment.
    Throttled,
}

impl CommandKind {
    /// Does this command change anything? Reads (and hook calls, which the user's
    /// endpoint must make idempotent) are simply retried; writes that may or may not have
    /// happened are resolved by observation first.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            CommandKind::Preflight(_)
                | CommandKind::FindTaskDefinition { .. }
                | CommandKind::Observe(_)
                | CommandKind::CallHook(_)
        )
    }

    /// Short, stable name for logs, metrics labels and plans.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Preflight(_) => "preflight",
            CommandKind::FindTaskDefinition { .. } => "find-task-definition",
            CommandKind::RegisterTaskDefinition { .. } => "register-task-definition",
            CommandKind::EnsureGreen(_) => "ensure-green",
            CommandKind::ScaleEnvironment { .. } => "scale-environment",
            CommandKind::DeleteEnvironment { .. } => "delete-environment",
            CommandKind::SetListenerWeights { .. } => "set-listener-weights",
            CommandKind::SetPrimaryTaskSet { .. } => "set-primary-task-set",
            CommandKind::TagSlots { .. } => "tag-slots",
            CommandKind::PlaceScaling { .. } => "place-scaling",
            CommandKind::Observe(Observe::Listener(_)) => "observe-listener",
            CommandKind::Observe(Observe::Service { .. }) => "observe-service",
            CommandKind::Observe(Observe::TargetHealth { .. }) => "observe-target-health",
            CommandKind::Observe(Observe::Alarms { .. }) => "observe-alarms",
            CommandKind::Observe(Observe::Metrics(_)) => "observe-metrics",
            CommandKind::CallHook(_) => "call-hook",
        }
    }

    /// The fewest AWS API calls the reference adapter makes for this command (the
    /// lower bound plans report and the simulator compares against). See
    /// `docs/commands.md` for the table.
    pub fn aws_calls_min(&self) -> u32 {
        match self {
            // DescribeListeners (+DescribeRules per rule), DescribeTargetGroups,
            // DescribeClusters, DescribeServices, DescribeTaskDefinition.
            CommandKind::Preflight(p) => {
                5 + u32::from(p.listener.rule_arn.is_some())
                    + u32::from(p.test_listener.is_some())
                    + u32::from(
                        p.test_listener
                            .as_ref()
                            .is_some_and(|t| t.rule_arn.is_some()),
                    )
            }
            // ListTaskDefinitions + DescribeTaskDefinition of the newest revision.
            CommandKind::FindTaskDefinition { .. } => 2,
            // DescribeTaskDefinition(base) + RegisterTaskDefinition.
            CommandKind::RegisterTaskDefinition { .. } => 2,
            // UpdateService | DescribeServices(blue task set) + CreateTaskSet.
            CommandKind::EnsureGreen(EnsureGreen::Service { .. }) => 1,
            CommandKind::EnsureGreen(EnsureGreen::TaskSet { .. }) => 2,
            CommandKind::ScaleEnvironment { .. } => 1,
            CommandKind::DeleteEnvironment { .. } => 1,
            // ModifyListener|ModifyRule + read-back.
            CommandKind::SetListenerWeights { .. } => 2,
            CommandKind::SetPrimaryTaskSet { .. } => 1,
            // AddTags per target group (their tag values differ).
            CommandKind::TagSlots { .. } => 2,
            // DescribeScalableTargets (both slots' services in one call).
            CommandKind::PlaceScaling { .. } => 1,
            CommandKind::Observe(Observe::Listener(_)) => 1,
            // DescribeServices (+ ListTasks STOPPED for the breaker; DescribeTasks only
            // when there are stopped tasks).
            CommandKind::Observe(Observe::Service { failures, .. }) => {
                1 + u32::from(failures.is_some())
            }
            CommandKind::Observe(Observe::TargetHealth { .. }) => 1,
            CommandKind::Observe(Observe::Alarms { names }) => names.len().div_ceil(100) as u32,
            CommandKind::Observe(Observe::Metrics(_)) => 1,
            CommandKind::CallHook(_) => 0,
        }
    }

    /// Does `result` answer this kind of command?
    pub fn accepts(&self, result: &CommandResult) -> bool {
        use CommandKind as K;
        use CommandResult as R;
        matches!(
            (self, result),
            (K::Preflight(_), R::PreflightPassed)
                | (K::FindTaskDefinition { .. }, R::TaskDefinitionFound { .. })
                | (
                    K::RegisterTaskDefinition { .. },
                    R::TaskDefinitionRegistered { .. }
                )
                | (K::EnsureGreen(_), R::GreenEnsured { .. })
                | (K::ScaleEnvironment { .. }, R::Scaled)
                | (K::DeleteEnvironment { .. }, R::Deleted)
                | (K::SetListenerWeights { .. }, R::WeightsSet(_))
                | (K::SetPrimaryTaskSet { .. }, R::PrimarySet)
                | (
                    K::Observe(Observe::Listener(_)),
                    R::Observed(Observation::Listener(_))
                )
                | (
                    K::Observe(Observe::Service { .. }),
                    R::Observed(Observation::Service(_))
                )
                | (
                    K::Observe(Observe::TargetHealth { .. }),
                    R::Observed(Observation::TargetHealth(_))
                )
                | (
                    K::Observe(Observe::Alarms { .. }),
                    R::Observed(Observation::Alarms(_))
                )
                | (
                    K::Observe(Observe::Metrics(_)),
                    R::Observed(Observation::Metrics(_))
                )
                | (K::CallHook(_), R::Hook(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_health_counts_every_state_and_keeps_reasons_bounded() {
        let mut h = TargetHealth {
            healthy: 1,
            unhealthy: 2,
            initial: 3,
            draining: 4,
            other: 5,
            reasons: vec![],
        };
        assert_eq!(h.total(), 15);
        for i in 0..TargetHealth::REASONS_MAX + 3 {
            h.note_reason("unhealthy", format!("Reason{i}"), None, 1);
        }
        h.note_reason("unhealthy", "Reason0", None, 2);
        h.note_reason("unhealthy", "Ignored", None, 0);
        assert_eq!(h.reasons.len(), TargetHealth::REASONS_MAX);
        assert_eq!(h.reasons[0].targets, 3, "equal reasons are grouped");
        let long = "é".repeat(TargetHealth::DESCRIPTION_BYTES_MAX);
        let mut g = TargetHealth::default();
        g.note_reason("unhealthy", "R", Some(long.into()), 1);
        let d = g.reasons[0].description.as_deref().unwrap();
        assert!(d.len() <= TargetHealth::DESCRIPTION_BYTES_MAX && d.chars().all(|c| c == 'é'));
        // The cut falls inside a character: it steps back to the character's start.
        let odd = format!("x{}", "é".repeat(TargetHealth::DESCRIPTION_BYTES_MAX));
        let mut g = TargetHealth::default();
        g.note_reason("unhealthy", "R", Some(odd.into()), 1);
        let d = g.reasons[0].description.as_deref().unwrap();
        assert_eq!(d.len(), TargetHealth::DESCRIPTION_BYTES_MAX - 1);
    }

    #[test]
    fn a_preflight_reads_each_rule_and_the_test_listener_on_top_of_its_five_calls() {
        let listener = |rule: Option<&str>| crate::spec::ListenerRef {
            listener_arn: "arn:l".into(),
            rule_arn: rule.map(Into::into),
        };
        let calls = |rule: Option<&str>, test: Option<crate::spec::ListenerRef>| {
            CommandKind::Preflight(Box::new(Preflight {
                cluster: "prod".into(),
                mode: crate::spec::Mode::ServicePair,
                services: vec!["a".into(), "b".into()],
                target_groups: ["x".into(), "y".into()],
                listener: listener(rule),
                test_listener: test,
                container: "app".into(),
            }))
            .aws_calls_min()
        };
        assert_eq!(calls(None, None), 5);
        assert_eq!(calls(Some("arn:r"), None), 6, "the production rule");
        assert_eq!(calls(None, Some(listener(None))), 6, "the test listener");
        assert_eq!(
            calls(Some("arn:r"), Some(listener(Some("arn:t")))),
            8,
            "and its rule"
        );
    }

    #[test]
    fn a_health_summary_names_every_state_present_and_the_reasons_given() {
        let mut h = TargetHealth {
            healthy: 0,
            unhealthy: 2,
            initial: 0,
            draining: 1,
            other: 0,
            reasons: vec![],
        };
        assert_eq!(h.summary(), "0 healthy, 2 unhealthy, 1 draining");
        h.note_reason(
            "unhealthy",
            "Target.ResponseCodeMismatch",
            Some("Health checks failed with these codes: [502]".into()),
            2,
        );
        h.note_reason("draining", "Target.DeregistrationInProgress", None, 1);
        assert_eq!(
            h.summary(),
            "0 healthy, 2 unhealthy, 1 draining (2× Target.ResponseCodeMismatch: Health checks \
             failed with these codes: [502]; 1× Target.DeregistrationInProgress)"
        );
        let all = TargetHealth {
            healthy: 1,
            unhealthy: 0,
            initial: 3,
            draining: 0,
            other: 4,
            reasons: vec![],
        };
        assert_eq!(all.summary(), "1 healthy, 3 initial, 4 unused/unavailable");
    }

    #[test]
    fn a_listener_reads_the_weight_of_each_group_and_the_total() {
        let l = ListenerState {
            forwards: vec![
                TargetWeight {
                    target_group: "a".into(),
                    weight: 30,
                },
                TargetWeight {
                    target_group: "b".into(),
                    weight: 70,
                },
            ],
        };
        assert_eq!(
            (l.weight_of("a"), l.weight_of("b"), l.weight_of("c")),
            (30, 70, 0)
        );
        assert_eq!(l.total_weight(), 100);
    }
}
