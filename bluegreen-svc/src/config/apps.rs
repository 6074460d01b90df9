//! One `[[apps]]` entry: as written in the file, and turned into an [`AppConfig`] (a
//! validated spec template).

use bluegreen_core::spec::{
    CircuitBreaker, HealthSpec, HookSpec, MetricCheck, Pacing, Strategy, Timeouts,
};
use bluegreen_core::time::duration;
use bluegreen_core::{Artifact, EnvironmentModel, ListenerRef, Mode, Name, SpecDraft};
use serde::Deserialize;

use super::AppConfig;

/// An ECR registry: the AWS account and region a push must come from (DESIGN §5,
/// "pinned registry").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub account: String,
    pub region: String,
}

impl Registry {
    fn valid(account: &str, region: &str) -> bool {
        account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && (1..=32).contains(&region.len())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    /// `<account>.dkr.ecr.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
    pub fn parse(text: &str) -> Option<Registry> {
        let (account, rest) = text.split_once(".dkr.ecr.")?;
        let region = rest
            .strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
        Self::valid(account, region).then(|| Registry {
            account: account.to_string(),
            region: region.to_string(),
        })
    }

    /// The account and region of an ARN (`arn:<partition>:<service>:<region>:<account>:…`);
    /// `None` when it is not an ARN with both.
    pub fn of_arn(arn: &str) -> Option<Registry> {
        let mut parts = arn.split(':');
        if parts.next() != Some("arn") {
            return None;
        }
        let (_partition, _service) = (parts.next()?, parts.next()?);
        let (region, account) = (parts.next()?, parts.next()?);
        Self::valid(account, region).then(|| Registry {
            account: account.to_string(),
            region: region.to_string(),
        })
    }

    /// Does a push from `account` in `region` come from this registry?
    pub fn admits(&self, account: &str, region: &str) -> bool {
        self.account == account && self.region == region
    }
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.dkr.ecr.{}.amazonaws.com", self.account, self.region)
    }
}

/// One `[[apps]]` entry as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: String,
    cluster: String,
    #[serde(default = "default_mode")]
    mode: Mode,
    services: Vec<String>,
    target_groups: Vec<String>,
    listener: String,
    #[serde(default)]
    listener_rule: Option<String>,
    #[serde(default)]
    test_listener: Option<String>,
    #[serde(default)]
    test_listener_rule: Option<String>,
    #[serde(default, with = "duration")]
    test_traffic: u64,
    container: String,
    #[serde(default)]
    repository: Option<String>,
    /// `<account>.dkr.ecr.<region>.amazonaws.com`: the only registry whose pushes deploy
    /// this app (default: the listener ARN's account and region).
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    desired_count: Option<u32>,
    /// Read by [`strategy`], so a bad field is named (`strategy.step`), not the table.
    #[serde(default)]
    strategy: Option<toml::Table>,
    #[serde(default, with = "duration")]
    bake: u64,
    #[serde(default, with = "duration")]
    drain: u64,
    #[serde(default)]
    alarms: Vec<String>,
    #[serde(default)]
    approval: bool,
    #[serde(default)]
    health: HealthSpec,
    #[serde(default)]
    circuit_breaker: CircuitBreaker,
    #[serde(default)]
    metrics: Vec<MetricCheck>,
    #[serde(default)]
    hooks: Vec<HookSpec>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    pacing: Pacing,
}

fn default_mode() -> Mode {
    Mode::ServicePair
}

/// `strategy = { kind = …, … }` → a [`Strategy`]; errors name the field within it.
fn strategy(t: Option<&toml::Table>) -> Result<Strategy, (String, String)> {
    let Some(t) = t else {
        return Ok(Strategy::AllAtOnce);
    };
    let err = |k: &str, m: String| (format!("strategy.{k}"), m);
    let kind = match t.get("kind") {
        Some(toml::Value::String(k)) => k.as_str(),
        Some(other) => {
            return Err(err(
                "kind",
                format!("must be a string (all-at-once, canary, linear), got {other}"),
            ));
        }
        None => {
            return Err(err(
                "kind",
                "is required: all-at-once, canary or linear".into(),
            ));
        }
    };
    let keys: &[&str] = match kind {
        "all-at-once" => &["kind"],
        "canary" => &["kind", "percent", "wait", "wait_ms"],
        "linear" => &["kind", "step", "step_percent", "interval", "interval_ms"],
        other => {
            return Err(err(
                "kind",
                format!("unknown strategy {other:?} (all-at-once, canary, linear)"),
            ));
        }
    };
    if let Some(k) = t.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(err(
            k,
            format!(
                "unknown key for kind = {kind:?} (keys: {})",
                keys[1..].join(", ")
            ),
        ));
    }
    // The first of `names` present: (the name used, its value).
    let field = |names: &[&'static str]| names.iter().find_map(|n| t.get(*n).map(|v| (*n, v)));
    let percent = |names: &[&'static str]| -> Result<u8, (String, String)> {
        let (name, v) = field(names)
            .ok_or_else(|| err(names[0], format!("is required for kind = {kind:?}")))?;
        match v {
            toml::Value::Integer(n) if (0..=255).contains(n) => Ok(*n as u8),
            other => Err(err(
                name,
                format!("must be a whole number of percent (1-99), got {other}"),
            )),
        }
    };
    let duration = |names: &[&'static str]| -> Result<u64, (String, String)> {
        let (name, v) = field(names)
            .ok_or_else(|| err(names[0], format!("is required for kind = {kind:?}")))?;
        match v {
            toml::Value::String(text) => {
                bluegreen_core::time::parse_duration_ms(text).map_err(|e| err(name, e.to_string()))
            }
            toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
            other => Err(err(
                name,
                format!("must be a duration such as \"5m\", got {other}"),
            )),
        }
    };
    Ok(match kind {
        "canary" => Strategy::Canary {
            percent: percent(&["percent"])?,
            wait_ms: duration(&["wait", "wait_ms"])?,
        },
        "linear" => Strategy::Linear {
            step_percent: percent(&["step", "step_percent"])?,
            interval_ms: duration(&["interval", "interval_ms"])?,
        },
        _ => Strategy::AllAtOnce,
    })
}

/// ECR's rule for repository names: lowercase letters and digits, separated by `.`, `_`,
/// `-` or `/` (no separator first, last or doubled); 2 to 256 characters.
fn ecr_repository_ok(name: &str) -> bool {
    let len_ok = (2..=256).contains(&name.len());
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c));
    let sep = |c: char| "._-/".contains(c);
    let placement_ok = !name.starts_with(sep)
        && !name.ends_with(sep)
        && !name
            .as_bytes()
            .windows(2)
            .any(|w| sep(w[0] as char) && sep(w[1] as char) && !(w[0] == b'_' && w[1] == b'_'));
    len_ok && chars_ok && placement_ok
}

/// Turn one `[[apps]]` entry into an [`AppConfig`]; errors are `(key within the entry, message)`.
pub(super) fn app_config(a: RawApp) -> Result<AppConfig, (String, String)> {
    let environment = match a.mode {
        Mode::ServicePair => match <[String; 2]>::try_from(a.services.clone()) {
            Ok(services) => EnvironmentModel::ServicePair {
                services: services.map(Name::from),
            },
            Err(v) => {
                return Err((
                    "services".into(),
                    format!(
                        "mode service-pair needs exactly 2 services (the two slots), got {}",
                        v.len()
                    ),
                ));
            }
        },
        Mode::TaskSet => match a.services.as_slice() {
            [one] => EnvironmentModel::TaskSet {
                service: one.clone().into(),
            },
            v => {
                return Err((
                    "services".into(),
                    format!(
                        "mode task-set needs exactly 1 service (with the EXTERNAL deployment controller), got {}",
                        v.len()
                    ),
                ));
            }
        },
    };
    let target_groups = <[String; 2]>::try_from(a.target_groups.clone()).map_err(|v| {
        (
            "target_groups".to_string(),
            format!(
                "needs exactly 2 target groups (slot a, slot b), got {}",
                v.len()
            ),
        )
    })?;
    if a.test_listener.is_none() && a.test_listener_rule.is_some() {
        return Err(("test_listener_rule".into(), "needs test_listener".into()));
    }
    for (i, tag) in a.tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > 128 {
            return Err((format!("tags[{i}]"), "must be 1 to 128 characters".into()));
        }
    }
    if let Some(r) = &a.repository
        && !ecr_repository_ok(r)
    {
        let hint = if r.chars().any(|c| c.is_ascii_uppercase()) {
            format!(" (ECR names are lowercase: {:?})", r.to_ascii_lowercase())
        } else {
            String::new()
        };
        return Err((
            "repository".into(),
            format!(
                "{r:?} is not an ECR repository name: lowercase letters, digits and . _ - / between them{hint}"
            ),
        ));
    }
    let strategy = strategy(a.strategy.as_ref())?;
    let registry = match &a.registry {
        Some(text) => Some(Registry::parse(text).ok_or_else(|| {
            (
                "registry".to_string(),
                format!(
                    "{text:?} is not an ECR registry such as 123456789012.dkr.ecr.us-east-1.amazonaws.com"
                ),
            )
        })?),
        None => Registry::of_arn(&a.listener),
    };
    let timeouts = a.timeouts;
    let placeholder = a
        .image
        .clone()
        .unwrap_or_else(|| format!("{}:config-check", a.name));
    let draft = SpecDraft {
        app: a.name.clone().into(),
        cluster: a.cluster.into(),
        environment,
        target_groups: target_groups.map(Name::from),
        listener: ListenerRef {
            listener_arn: a.listener.into(),
            rule_arn: a.listener_rule.map(Name::from),
        },
        test_listener: a.test_listener.map(|l| ListenerRef {
            listener_arn: l.into(),
            rule_arn: a.test_listener_rule.map(Name::from),
        }),
        test_traffic_ms: a.test_traffic,
        container: a.container.into(),
        artifact: Artifact::Image(placeholder.into()),
        desired_count: a.desired_count,
        strategy,
        bake_ms: a.bake,
        drain_ms: a.drain,
        approval_timeout_ms: a.approval.then_some(timeouts.approval_ms),
        health: a.health,
        circuit_breaker: a.circuit_breaker,
        alarms: a.alarms.into_iter().map(Name::from).collect(),
        metrics: a.metrics,
        hooks: a.hooks,
        timeouts,
        pacing: a.pacing,
    };
    draft
        .validate()
        .map_err(|e| (config_key(&e.field), e.reason))?;
    Ok(AppConfig {
        name: a.name,
        repository: a.repository,
        registry,
        tags: a.tags,
        image: a.image,
        draft,
    })
}

/// A spec field as the config file spells it.
fn config_key(field: &str) -> String {
    let fixed = match field {
        "listener.listener_arn" => "listener",
        "listener.rule_arn" => "listener_rule",
        "test_listener.listener_arn" => "test_listener",
        "test_listener.rule_arn" => "test_listener_rule",
        "service" => "services[0]",
        "strategy.step_percent" => "strategy.step",
        "task_definition" => "image",
        other => other,
    };
    fixed.replace("_ms", "")
}
