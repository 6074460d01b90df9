//! Rollback signals and hooks: what the machine watches, and the user's own checks.

use serde::{Deserialize, Serialize};

use super::SpecError;
use crate::name::Name;
use crate::time::duration;

/// A metric the machine reads with CloudWatch `GetMetricData` on the green target group
/// (and on blue, for the relative limit) while green takes production traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricCheck {
    /// Names the check in reasons and metrics labels, e.g. `"5xx-rate"`.
    pub name: Name,
    pub metric: MetricKind,
    /// Absolute limit on green's value: above it → rollback.
    #[serde(default)]
    pub max: Option<f64>,
    /// Relative limit: green above `blue × max_ratio_to_blue` → rollback. Evaluated only
    /// when blue has data for the window (blue carries no traffic once fully shifted).
    #[serde(default)]
    pub max_ratio_to_blue: Option<f64>,
    /// Green values at or below this never breach the relative limit (so 0.1 % vs 0.02 %
    /// 5xx does not roll back a deployment on noise).
    #[serde(default)]
    pub floor: f64,
    /// The look-back window each evaluation reads.
    #[serde(
        rename = "window",
        alias = "window_ms",
        with = "duration",
        default = "default_window_ms"
    )]
    pub window_ms: u64,
}

fn default_window_ms() -> u64 {
    300_000
}

/// Which metric a check reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MetricKind {
    /// `HTTPCode_Target_5XX_Count / RequestCount × 100` on the target group (percent).
    ErrorRate5xx,
    /// `TargetResponseTime` p99 on the target group, in milliseconds.
    LatencyP99,
    /// Any CloudWatch metric. In `dimensions`, the value `$target_group` stands for the
    /// side's `TargetGroup` dimension and `$load_balancer` for the listener's load balancer.
    Custom {
        namespace: Name,
        metric_name: Name,
        /// `Sum`, `Average`, `Maximum`, `Minimum`, `SampleCount` or `pNN`.
        stat: Name,
        #[serde(default)]
        dimensions: Vec<(Name, Name)>,
    },
}

/// When a hook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStage {
    /// Green is steady and healthy, before any traffic (CodeDeploy's AfterInstall).
    GreenReady,
    /// The test listener points at green (AfterAllowTestTraffic).
    TestTraffic,
    /// Just before the first production weight moves (BeforeAllowTraffic).
    BeforeShift,
    /// Green has 100 % of production, before bake (AfterAllowTraffic).
    AfterShift,
    /// During rollback, after production is back on blue and before green is removed.
    /// Its verdict is recorded; a failing rollback hook cannot stop the rollback.
    Rollback,
}

impl HookStage {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::GreenReady => "green-ready",
            HookStage::TestTraffic => "test-traffic",
            HookStage::BeforeShift => "before-shift",
            HookStage::AfterShift => "after-shift",
            HookStage::Rollback => "rollback",
        }
    }
}

/// An HTTP endpoint the user owns. The executor POSTs a signed JSON payload; 2xx passes,
/// 4xx fails, `{"verdict":"not-yet"}` asks to be called again; timeouts and 5xx are retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub name: Name,
    pub stage: HookStage,
    pub url: Name,
    /// One HTTP call's timeout.
    #[serde(
        rename = "timeout",
        alias = "timeout_ms",
        with = "duration",
        default = "default_hook_timeout_ms"
    )]
    pub timeout_ms: u64,
    /// How long the hook may keep answering `not-yet` (or failing retryably) before it
    /// counts as failed.
    #[serde(
        rename = "deadline",
        alias = "deadline_ms",
        with = "duration",
        default = "default_hook_deadline_ms"
    )]
    pub deadline_ms: u64,
    /// Pause between a `not-yet` answer and the next call.
    #[serde(
        rename = "interval",
        alias = "interval_ms",
        with = "duration",
        default = "default_hook_interval_ms"
    )]
    pub interval_ms: u64,
}

fn default_hook_timeout_ms() -> u64 {
    10_000
}
fn default_hook_deadline_ms() -> u64 {
    300_000
}
fn default_hook_interval_ms() -> u64 {
    10_000
}

/// Target-health requirements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSpec {
    /// K: consecutive observations with every green target healthy before green counts
    /// as healthy (guards against a target flapping healthy once).
    pub healthy_observations_min: u32,
    /// After health-check passed: this many consecutive observations with fewer healthy
    /// targets than desired → rollback. Zero healthy targets rolls back at once, whatever
    /// this says (green with weight and no healthy target is dark traffic).
    pub degraded_observations_max: u32,
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            healthy_observations_min: 3,
            degraded_observations_max: 3,
        }
    }
}

/// ECS task-failure circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// This many green tasks stopped by failure (not by scaling) → rollback.
    pub failed_tasks_max: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failed_tasks_max: 3,
        }
    }
}

impl MetricCheck {
    pub(crate) fn validate(&self, field: &str) -> Result<(), SpecError> {
        super::check_name(&format!("{field}.name"), &self.name)?;
        if self.max.is_none() && self.max_ratio_to_blue.is_none() {
            return Err(SpecError::new(
                field,
                "needs `max`, `max_ratio_to_blue` or both: a check without a limit never fires",
            ));
        }
        for (key, value) in [
            ("max", self.max),
            ("max_ratio_to_blue", self.max_ratio_to_blue),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(SpecError::new(
                    format!("{field}.{key}"),
                    "must be a finite number >= 0",
                ));
            }
        }
        if !self.floor.is_finite() || self.floor < 0.0 {
            return Err(SpecError::new(
                format!("{field}.floor"),
                "must be a finite number >= 0",
            ));
        }
        if !(60_000..=86_400_000).contains(&self.window_ms) {
            return Err(SpecError::new(
                format!("{field}.window"),
                "must be between 1m and 24h (CloudWatch periods are whole minutes)",
            ));
        }
        if let MetricKind::Custom {
            namespace,
            metric_name,
            stat,
            dimensions,
        } = &self.metric
        {
            if namespace.is_empty() || metric_name.is_empty() {
                return Err(SpecError::new(
                    format!("{field}.metric"),
                    "custom metrics need `namespace` and `metric_name`",
                ));
            }
            if !is_valid_stat(stat) {
                return Err(SpecError::new(
                    format!("{field}.metric.stat"),
                    format!(
                        "{stat:?} is not a CloudWatch statistic (Sum, Average, Maximum, Minimum, SampleCount, pNN)"
                    ),
                ));
            }
            if dimensions.len() > 30 {
                return Err(SpecError::new(
                    format!("{field}.metric.dimensions"),
                    "CloudWatch allows at most 30 dimensions",
                ));
            }
        }
        Ok(())
    }
}

fn is_valid_stat(stat: &str) -> bool {
    match stat {
        "Sum" | "Average" | "Maximum" | "Minimum" | "SampleCount" => true,
        p => p
            .strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| n > 0.0 && n < 100.0),
    }
}

impl HookSpec {
    pub(crate) fn validate(&self, field: &str) -> Result<(), SpecError> {
        super::check_name(&format!("{field}.name"), &self.name)?;
        let url = self.url.as_str();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !url.chars().any(char::is_whitespace) => {}
            _ => {
                return Err(SpecError::new(
                    format!("{field}.url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err(SpecError::new(
                format!("{field}.timeout"),
                "must be between 100ms and 2m",
            ));
        }
        if self.deadline_ms < self.timeout_ms || self.deadline_ms > super::WAIT_MS_MAX {
            return Err(SpecError::new(
                format!("{field}.deadline"),
                "must be at least the call timeout and at most 24h",
            ));
        }
        if !(100..=3_600_000).contains(&self.interval_ms) {
            return Err(SpecError::new(
                format!("{field}.interval"),
                "must be between 100ms and 1h",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_check_without_a_window_reads_the_last_five_minutes() {
        let mut v = serde_json::to_value(MetricCheck {
            window_ms: 60_000,
            ..check()
        })
        .unwrap();
        assert!(v.as_object_mut().unwrap().remove("window").is_some());
        let c: MetricCheck = serde_json::from_value(v).expect("a check with no window parses");
        assert_eq!(c.window_ms, 300_000);
    }

    fn check() -> MetricCheck {
        MetricCheck {
            name: "5xx".into(),
            metric: MetricKind::ErrorRate5xx,
            max: Some(1.0),
            max_ratio_to_blue: None,
            floor: 0.0,
            window_ms: 300_000,
        }
    }

    #[test]
    fn a_metric_check_without_limits_is_rejected() {
        let mut c = check();
        c.max = None;
        assert_eq!(c.validate("metrics[0]").unwrap_err().field, "metrics[0]");
    }

    #[test]
    fn negative_or_nan_limits_name_the_key() {
        let mut c = check();
        c.max = Some(f64::NAN);
        assert_eq!(
            c.validate("metrics[2]").unwrap_err().field,
            "metrics[2].max"
        );
        let mut c = check();
        c.max_ratio_to_blue = Some(-1.0);
        assert_eq!(
            c.validate("metrics[0]").unwrap_err().field,
            "metrics[0].max_ratio_to_blue"
        );
    }

    #[test]
    fn custom_stat_must_be_a_cloudwatch_statistic() {
        let mut c = check();
        c.metric = MetricKind::Custom {
            namespace: "App".into(),
            metric_name: "Errors".into(),
            stat: "Median".into(),
            dimensions: vec![],
        };
        assert_eq!(
            c.validate("metrics[0]").unwrap_err().field,
            "metrics[0].metric.stat"
        );
        assert!(is_valid_stat("p99"));
        assert!(is_valid_stat("p99.9"));
        assert!(!is_valid_stat("p100"));
    }

    #[test]
    fn hook_urls_must_be_http() {
        let h = HookSpec {
            name: "smoke".into(),
            stage: HookStage::GreenReady,
            url: "ftp://x".into(),
            timeout_ms: 1000,
            deadline_ms: 10_000,
            interval_ms: 1000,
        };
        assert_eq!(h.validate("hooks[0]").unwrap_err().field, "hooks[0].url");
    }
}
