//! What to deploy and how: [`SpecDraft`] is the plain input, [`DeploymentSpec`] the
//! validated value the machine accepts. A bad spec is a [`SpecError`] naming the field.

mod signals;
mod strategy;

use core::ops::Deref;

use serde::{Deserialize, Serialize};

pub use signals::{CircuitBreaker, HealthSpec, HookSpec, HookStage, MetricCheck, MetricKind};
pub use strategy::{SHIFT_STEPS_MAX, ShiftStep, Strategy};

use crate::name::Name;
use crate::time::{duration, duration_opt};

/// Longest single wait (strategy hold, bake, approval, hook deadline) a spec may ask for.
pub const WAIT_MS_MAX: u64 = 86_400_000;
/// The ALB deregistration delay's upper bound; drain is capped to the same.
pub const DRAIN_MS_MAX: u64 = 3_600_000;
/// Most alarms one deployment watches (`DescribeAlarms` takes 100 names a call).
pub const ALARMS_MAX: usize = 500;
/// Most metric checks (each is up to 4 queries in one `GetMetricData` call of ≤ 500).
pub const METRIC_CHECKS_MAX: usize = 20;
/// Most hooks across all stages.
pub const HOOKS_MAX: usize = 32;
/// Largest green size accepted (the ECS service quota for tasks per service is 5,000).
pub const DESIRED_COUNT_MAX: u32 = 5_000;

/// A spec field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// Dotted path of the offending field, e.g. `strategy.percent` or `hooks[1].url`.
    pub field: String,
    pub reason: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// How the two environments are held on ECS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EnvironmentModel {
    /// Two ECS services, `services[i]` bound to `target_groups[i]`; green is the idle slot.
    ServicePair { services: [Name; 2] },
    /// One service with the `EXTERNAL` deployment controller; green is a new task set.
    TaskSet { service: Name },
}

impl EnvironmentModel {
    pub fn mode(&self) -> Mode {
        match self {
            EnvironmentModel::ServicePair { .. } => Mode::ServicePair,
            EnvironmentModel::TaskSet { .. } => Mode::TaskSet,
        }
    }
}

/// The environment model without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    ServicePair,
    TaskSet,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ServicePair => "service-pair",
            Mode::TaskSet => "task-set",
        }
    }
}

/// A listener's default action, or one of its rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerRef {
    pub listener_arn: Name,
    /// When set, the weights live on this rule's forward action, not the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<Name>,
}

impl ListenerRef {
    /// The `LoadBalancer` CloudWatch dimension (`app/<name>/<id>`) from the listener ARN
    /// `arn:…:listener/app/<name>/<lb-id>/<listener-id>`.
    pub fn load_balancer_dimension(&self) -> Option<String> {
        crate::arn::Arn::parse(&self.listener_arn)
            .ok()?
            .load_balancer_dimension()
    }
}

/// The `TargetGroup` CloudWatch dimension (`targetgroup/<name>/<id>`) from a target group
/// ARN `arn:…:targetgroup/<name>/<id>`.
pub fn target_group_dimension(arn: &str) -> Option<String> {
    crate::arn::Arn::parse(arn).ok()?.target_group_dimension()
}

/// What green runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Artifact {
    /// Register a new revision of blue's task definition with `container`'s image
    /// replaced (reused when a revision with exactly this image already exists).
    Image(Name),
    /// Deploy an existing task-definition revision as is.
    TaskDefinition(Name),
}

/// Per-phase time limits. Exceeding one rolls back (or, for the final verifications,
/// fails with what an operator must do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// create-green + deploy: green steady (running == desired).
    #[serde(rename = "deploy", alias = "deploy_ms", with = "duration")]
    pub deploy_ms: u64,
    /// health-check: K consecutive healthy observations. Also bounds a shift step
    /// waiting for green to be fully healthy again.
    #[serde(rename = "health", alias = "health_ms", with = "duration")]
    pub health_ms: u64,
    /// approval: no `promote` by then → rollback.
    #[serde(rename = "approval", alias = "approval_ms", with = "duration")]
    pub approval_ms: u64,
    /// A command with no result by then is treated as lost (ambiguous for writes).
    #[serde(rename = "command", alias = "command_ms", with = "duration")]
    pub command_ms: u64,
    /// Waiting for the scaled-down side to hold no tasks (covers the deregistration
    /// delay of its target group).
    #[serde(rename = "scale_down", alias = "scale_down_ms", with = "duration")]
    pub scale_down_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            deploy_ms: 900_000,
            health_ms: 600_000,
            approval_ms: 3_600_000,
            command_ms: 60_000,
            scale_down_ms: 4_200_000,
        }
    }
}

/// How the machine paces itself and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pacing {
    /// Observation interval (a 0–10 % jitter from the deployment seed is added).
    #[serde(
        rename = "poll_interval",
        alias = "poll_interval_ms",
        with = "duration"
    )]
    pub poll_interval_ms: u64,
    /// Attempts per command (first try included) before giving up on the step.
    pub attempts_max: u32,
    /// First retry delay; doubles per attempt, plus up to 100 % seeded jitter.
    #[serde(rename = "retry_min", alias = "retry_min_ms", with = "duration")]
    pub retry_min_ms: u64,
    /// Cap on one retry delay (before jitter).
    #[serde(rename = "retry_max", alias = "retry_max_ms", with = "duration")]
    pub retry_max_ms: u64,
    /// In holds (green healthy: test traffic, approval, shift waits, bake, the drain
    /// wait), read the slow signals — alarms, metric checks, green's task counts — only
    /// this often; green's target health is still read at every poll. Meant for apps
    /// whose alarm events are wired to the service (`deploy/eventbridge.yaml`): an
    /// alarm then arrives within a second and the polled read is the fallback for a
    /// lost event. Unset: every observation reads everything.
    #[serde(
        rename = "signal_poll",
        alias = "signal_poll_ms",
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub signal_poll_ms: Option<u64>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            poll_interval_ms: 10_000,
            attempts_max: 8,
            retry_min_ms: 1_000,
            retry_max_ms: 30_000,
            signal_poll_ms: None,
        }
    }
}

/// Everything a deployment needs, as written by a user (config file, API, embedding code).
/// Turn it into a [`DeploymentSpec`] with [`DeploymentSpec::new`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecDraft {
    pub app: Name,
    pub cluster: Name,
    pub environment: EnvironmentModel,
    /// `target_groups[i]` belongs to slot *i* (`services[i]` in the service-pair model).
    pub target_groups: [Name; 2],
    /// Production traffic.
    pub listener: ListenerRef,
    /// Optional: green gets test traffic here before production.
    #[serde(default)]
    pub test_listener: Option<ListenerRef>,
    /// How long green holds the test traffic (after the test-traffic hooks) before going on.
    #[serde(
        rename = "test_traffic",
        alias = "test_traffic_ms",
        with = "duration",
        default
    )]
    pub test_traffic_ms: u64,
    /// The container whose image is replaced.
    pub container: Name,
    pub artifact: Artifact,
    /// Green's task count; `None` sizes green like blue.
    #[serde(default)]
    pub desired_count: Option<u32>,
    pub strategy: Strategy,
    #[serde(rename = "bake", alias = "bake_ms", with = "duration", default)]
    pub bake_ms: u64,
    /// Wait between blue losing its last weight and blue being scaled down, so in-flight
    /// requests finish.
    #[serde(rename = "drain", alias = "drain_ms", with = "duration", default)]
    pub drain_ms: u64,
    /// `Some(timeout)`: wait for an operator's promote before production traffic.
    #[serde(
        rename = "approval",
        alias = "approval_ms",
        with = "duration_opt",
        default
    )]
    pub approval_timeout_ms: Option<u64>,
    #[serde(default)]
    pub health: HealthSpec,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// CloudWatch alarm names: any in ALARM → rollback. Shared: every alarms read the
    /// machine sends names them all, and cloning the list is then a count, not a copy.
    #[serde(default)]
    pub alarms: std::sync::Arc<[Name]>,
    #[serde(default)]
    pub metrics: Vec<MetricCheck>,
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub pacing: Pacing,
}

/// A validated [`SpecDraft`]: every deployment is built from one, so the machine never
/// meets a spec it cannot carry out. Deserialising validates too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpecDraft", into = "SpecDraft")]
pub struct DeploymentSpec(SpecDraft);

impl DeploymentSpec {
    pub fn new(draft: SpecDraft) -> Result<Self, SpecError> {
        draft.validate()?;
        Ok(DeploymentSpec(draft))
    }

    pub fn draft(&self) -> &SpecDraft {
        &self.0
    }

    pub fn into_draft(self) -> SpecDraft {
        self.0
    }

    pub fn mode(&self) -> Mode {
        self.0.environment.mode()
    }

    /// Hooks of one stage, in configuration order.
    pub fn hooks_at(&self, stage: HookStage) -> impl Iterator<Item = (usize, &HookSpec)> {
        self.0
            .hooks
            .iter()
            .enumerate()
            .filter(move |(_, h)| h.stage == stage)
    }
}

impl Deref for DeploymentSpec {
    type Target = SpecDraft;
    fn deref(&self) -> &SpecDraft {
        &self.0
    }
}

impl TryFrom<SpecDraft> for DeploymentSpec {
    type Error = SpecError;
    fn try_from(d: SpecDraft) -> Result<Self, SpecError> {
        DeploymentSpec::new(d)
    }
}

impl From<DeploymentSpec> for SpecDraft {
    fn from(s: DeploymentSpec) -> SpecDraft {
        s.0
    }
}

/// Names (app, hooks, checks) appear in URLs, metric labels and log lines.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.len() > 64 {
        return Err(SpecError::new(field, "must be 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(SpecError::new(
            field,
            format!("character {c:?} is not allowed (use a-z A-Z 0-9 - _ .)"),
        ));
    }
    Ok(())
}

fn check_arn(field: &str, arn: &str, kind: &str) -> Result<(), SpecError> {
    let ok = crate::arn::Arn::parse(arn).is_ok_and(|a| {
        a.service == "elasticloadbalancing"
            && a.resource_type() == kind
            && !a.resource_path().is_empty()
    }) && !arn.chars().any(char::is_whitespace)
        && arn.len() <= 2048;
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("{arn:?} is not an ELBv2 {kind} ARN (arn:aws:elasticloadbalancing:…:{kind}/…)"),
        ))
    }
}

fn check_listener(field: &str, l: &ListenerRef) -> Result<(), SpecError> {
    check_arn(
        &format!("{field}.listener_arn"),
        &l.listener_arn,
        "listener",
    )?;
    if let Some(rule) = &l.rule_arn {
        check_arn(&format!("{field}.rule_arn"), rule, "listener-rule")?;
    }
    Ok(())
}

fn check_resource_name(field: &str, name: &str) -> Result<(), SpecError> {
    // ECS names: up to 255 letters, numbers, hyphens, underscores (cluster/service may be ARNs).
    if name.is_empty() || name.len() > 2048 || name.chars().any(char::is_whitespace) {
        return Err(SpecError::new(
            field,
            "must be a non-empty name or ARN without whitespace",
        ));
    }
    Ok(())
}

impl SpecDraft {
    /// Every rule a spec must satisfy; the first broken one is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name("app", &self.app)?;
        check_resource_name("cluster", &self.cluster)?;
        match &self.environment {
            EnvironmentModel::ServicePair { services } => {
                check_resource_name("services[0]", &services[0])?;
                check_resource_name("services[1]", &services[1])?;
                if services[0] == services[1] {
                    return Err(SpecError::new(
                        "services",
                        "the two slots must be different services",
                    ));
                }
            }
            EnvironmentModel::TaskSet { service } => check_resource_name("service", service)?,
        }
        check_arn("target_groups[0]", &self.target_groups[0], "targetgroup")?;
        check_arn("target_groups[1]", &self.target_groups[1], "targetgroup")?;
        if self.target_groups[0] == self.target_groups[1] {
            return Err(SpecError::new(
                "target_groups",
                "blue and green need two different target groups",
            ));
        }
        check_listener("listener", &self.listener)?;
        if let Some(test) = &self.test_listener {
            check_listener("test_listener", test)?;
            if test == &self.listener {
                return Err(SpecError::new(
                    "test_listener",
                    "must differ from the production listener (or rule)",
                ));
            }
        } else if self.test_traffic_ms > 0 {
            return Err(SpecError::new(
                "test_traffic",
                "a test-traffic hold needs a test_listener",
            ));
        }
        if self.test_traffic_ms > WAIT_MS_MAX {
            return Err(SpecError::new("test_traffic", "must be at most 24h"));
        }
        check_resource_name("container", &self.container)?;
        match &self.artifact {
            Artifact::Image(image) => {
                if image.is_empty() || image.len() > 1024 || image.chars().any(char::is_whitespace)
                {
                    return Err(SpecError::new(
                        "image",
                        "must be an image reference such as <repo>@sha256:<digest> or <repo>:<tag>",
                    ));
                }
                if let Some((_, digest)) = image.split_once("@sha256:")
                    && (digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(SpecError::new(
                        "image",
                        "a sha256 digest must be 64 hex characters",
                    ));
                }
            }
            Artifact::TaskDefinition(arn) => {
                if !arn.contains("task-definition/") && !arn.contains(':') {
                    return Err(SpecError::new(
                        "task_definition",
                        "must be a task-definition ARN or family:revision",
                    ));
                }
            }
        }
        if self.desired_count.is_some() && self.environment.mode() == Mode::TaskSet {
            return Err(SpecError::new(
                "desired_count",
                "task sets are sized as a share of their service: set the service's desired count instead",
            ));
        }
        if let Some(n) = self.desired_count
            && !(1..=DESIRED_COUNT_MAX).contains(&n)
        {
            return Err(SpecError::new(
                "desired_count",
                format!("must be between 1 and {DESIRED_COUNT_MAX}"),
            ));
        }
        self.strategy.validate()?;
        if self.bake_ms > WAIT_MS_MAX {
            return Err(SpecError::new("bake", "must be at most 24h"));
        }
        if self.drain_ms > DRAIN_MS_MAX {
            return Err(SpecError::new(
                "drain",
                "must be at most 1h (the ALB deregistration delay's maximum)",
            ));
        }
        if let Some(t) = self.approval_timeout_ms
            && !(1..=7 * WAIT_MS_MAX).contains(&t)
        {
            return Err(SpecError::new(
                "approval",
                "timeout must be between 1ms and 7d",
            ));
        }
        let h = &self.health;
        if !(1..=100).contains(&h.healthy_observations_min) {
            return Err(SpecError::new(
                "health.healthy_observations_min",
                "must be between 1 and 100",
            ));
        }
        if !(1..=100).contains(&h.degraded_observations_max) {
            return Err(SpecError::new(
                "health.degraded_observations_max",
                "must be between 1 and 100",
            ));
        }
        if !(1..=1000).contains(&self.circuit_breaker.failed_tasks_max) {
            return Err(SpecError::new(
                "circuit_breaker.failed_tasks_max",
                "must be between 1 and 1000",
            ));
        }
        if self.alarms.len() > ALARMS_MAX {
            return Err(SpecError::new(
                "alarms",
                format!("at most {ALARMS_MAX} alarms"),
            ));
        }
        for (i, name) in self.alarms.iter().enumerate() {
            if name.is_empty() || name.len() > 255 {
                return Err(SpecError::new(
                    format!("alarms[{i}]"),
                    "alarm names are 1 to 255 characters",
                ));
            }
            if self.alarms[..i].contains(name) {
                return Err(SpecError::new(
                    format!("alarms[{i}]"),
                    format!("{name:?} is listed twice"),
                ));
            }
        }
        if self.metrics.len() > METRIC_CHECKS_MAX {
            return Err(SpecError::new(
                "metrics",
                format!("at most {METRIC_CHECKS_MAX} metric checks"),
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            m.validate(&format!("metrics[{i}]"))?;
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(SpecError::new(
                    format!("metrics[{i}].name"),
                    "metric check names must be unique",
                ));
            }
        }
        if !self.metrics.is_empty() && self.listener.load_balancer_dimension().is_none() {
            return Err(SpecError::new(
                "listener.listener_arn",
                "metric checks need the load balancer, read from the listener ARN (…:listener/app/<name>/<id>/<id>)",
            ));
        }
        if self.hooks.len() > HOOKS_MAX {
            return Err(SpecError::new(
                "hooks",
                format!("at most {HOOKS_MAX} hooks"),
            ));
        }
        for (i, hook) in self.hooks.iter().enumerate() {
            hook.validate(&format!("hooks[{i}]"))?;
            if self.hooks[..i].iter().any(|o| o.name == hook.name) {
                return Err(SpecError::new(
                    format!("hooks[{i}].name"),
                    "hook names must be unique",
                ));
            }
            if hook.stage == HookStage::TestTraffic && self.test_listener.is_none() {
                return Err(SpecError::new(
                    format!("hooks[{i}].stage"),
                    "a test-traffic hook needs a test_listener",
                ));
            }
        }
        let t = &self.timeouts;
        for (field, v, lo, hi) in [
            ("timeouts.deploy", t.deploy_ms, 1_000, WAIT_MS_MAX),
            ("timeouts.health", t.health_ms, 1_000, WAIT_MS_MAX),
            ("timeouts.approval", t.approval_ms, 1_000, 7 * WAIT_MS_MAX),
            ("timeouts.command", t.command_ms, 1_000, 600_000),
            ("timeouts.scale_down", t.scale_down_ms, 1_000, WAIT_MS_MAX),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(SpecError::new(
                    field,
                    format!(
                        "must be between {} and {}",
                        crate::time::format_duration_ms(lo),
                        crate::time::format_duration_ms(hi)
                    ),
                ));
            }
        }
        let p = &self.pacing;
        if !(100..=600_000).contains(&p.poll_interval_ms) {
            return Err(SpecError::new(
                "pacing.poll_interval",
                "must be between 100ms and 10m",
            ));
        }
        if let Some(ms) = p.signal_poll_ms
            && !(p.poll_interval_ms..=3_600_000).contains(&ms)
        {
            return Err(SpecError::new(
                "pacing.signal_poll",
                "must be between pacing.poll_interval and 1h",
            ));
        }
        if !(1..=100).contains(&p.attempts_max) {
            return Err(SpecError::new(
                "pacing.attempts_max",
                "must be between 1 and 100",
            ));
        }
        if p.retry_min_ms == 0 || p.retry_min_ms > p.retry_max_ms || p.retry_max_ms > 600_000 {
            return Err(SpecError::new(
                "pacing.retry_min",
                "needs 0 < retry_min <= retry_max <= 10m",
            ));
        }
        Ok(())
    }
}
