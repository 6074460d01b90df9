//! The configuration file (TOML, DESIGN §5; every key in `docs/config.md`).
//!
//! - Every error names the key and the line it is on (`bluegreen.toml:14: apps[0].strategy.percent: …`).
//! - `BLUEGREEN_<SECTION>_<KEY>` environment variables override the scalar keys of
//!   `[server]`, `[cloud]`, `[runner]` and `[log]` (e.g. `BLUEGREEN_SERVER_LISTEN`).
//! - Secrets never come from the file: tokens and the hook secret are read from the
//!   environment only, and a store URL with a password in the file is refused.
//! - Each `[[apps]]` entry becomes a [`SpecDraft`] template; a deployment adds the image.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bluegreen_core::time::duration;
use bluegreen_core::{Artifact, DeploymentSpec, Name, SpecDraft};
use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::telemetry::LogFormat;

mod apps;
mod env;
mod locate;

pub use apps::Registry;
use apps::{RawApp, app_config};
use env::apply_env;
use locate::{LineIndex, find_span, key_at};

/// The built-in example: one app on the simulated cloud, paced so a deployment takes
/// about a minute. Used when no `--config` is given and `./bluegreen.toml` is absent.
pub const EXAMPLE_TOML: &str = include_str!("../example.toml");

/// Most apps one controller manages.
pub const APPS_MAX: usize = 20_000;
/// Largest configuration file read.
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A configuration problem: which key, on which line, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{origin}{}: {}{message}",
    line.map(|l| format!(":{l}")).unwrap_or_default(),
    if key == "-" { String::new() } else { format!("{key}: ") }
)]
pub struct ConfigError {
    /// The file (or `built-in example`, or the environment variable's name).
    pub origin: String,
    /// Dotted key, e.g. `apps[0].strategy.percent`.
    pub key: String,
    /// 1-based line of the key in the file, when it is in the file.
    pub line: Option<usize>,
    pub message: String,
}

/// Which cloud the service drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CloudKind {
    /// The simulated world (bluegreen-sim), seeded from the apps below.
    Sim,
    /// Real AWS through the standard credential chain (`AWS_ENDPOINT_URL` honoured).
    Aws,
    /// A simulated world served by another process (`bluegreen sim-cloud`) at
    /// `cloud.url`: several replicas share one simulated account (tests, demos of HA).
    Remote,
}

/// The simulated world's timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProfile {
    /// Seconds: tasks start in 1–3 s, health checks every ~1 s (demos, tests).
    Fast,
    /// DESIGN §4a: the figures real AWS shows (minutes).
    Aws,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub store: String,
    /// Longest a request may take before it is answered 408.
    #[serde(with = "duration")]
    pub request_timeout: u64,
    /// Longest a client may take to send a request's headers; the connection is closed
    /// after that (a slow client cannot hold a descriptor for ever).
    #[serde(with = "duration")]
    pub header_read_timeout: u64,
    /// Most client connections open at once; one more is answered 503 and closed.
    pub connections_max: usize,
    /// Requests per minute each API token may make (a token bucket), and its burst.
    pub api_rate: u32,
    pub api_burst: u32,
    /// Requests per minute the webhook token may make, and its burst.
    pub webhook_rate: u32,
    pub webhook_burst: u32,
    /// How long `GET /v1/apps` reuses a listener it read (the listener stays the source
    /// of truth; this only bounds how often a dashboard's refreshes reach AWS).
    #[serde(with = "duration")]
    pub apps_cache_ttl: u64,
    /// Finished (and superseded or cancelled) deployments older than this are deleted
    /// with their journals, in the background.
    #[serde(with = "duration")]
    pub retention: u64,
}

/// Defaults of the `[server]` limits (also quoted by `docs/service.md`).
pub mod server_defaults {
    pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
    pub const CONNECTIONS_MAX: usize = 1_024;
    pub const API_RATE: u32 = 1_200;
    pub const API_BURST: u32 = 120;
    pub const WEBHOOK_RATE: u32 = 600;
    pub const WEBHOOK_BURST: u32 = 60;
    pub const APPS_CACHE_TTL_MS: u64 = 5_000;
    pub const RETENTION_MS: u64 = 90 * 86_400_000;
}

impl Default for ServerConfig {
    fn default() -> Self {
        use server_defaults as d;
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            store: "sqlite://bluegreen.db".into(),
            request_timeout: 30_000,
            header_read_timeout: d::HEADER_READ_TIMEOUT_MS,
            connections_max: d::CONNECTIONS_MAX,
            api_rate: d::API_RATE,
            api_burst: d::API_BURST,
            webhook_rate: d::WEBHOOK_RATE,
            webhook_burst: d::WEBHOOK_BURST,
            apps_cache_ttl: d::APPS_CACHE_TTL_MS,
            retention: d::RETENTION_MS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    pub kind: CloudKind,
    /// Simulated cloud only: the world's seed.
    pub seed: u64,
    /// Simulated cloud only: its timings.
    pub profile: SimProfile,
    /// Simulated cloud only: run the clock this many times faster than the wall clock.
    pub speed: u32,
    /// Remote simulated cloud only: the `bluegreen sim-cloud` address (`http://…`).
    pub url: Option<String>,
    /// Simulated cloud only: enforce AWS's per-account API rate limits (DESIGN §4a);
    /// `false` lifts them (benches of the service itself).
    pub throttle: bool,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            kind: CloudKind::Sim,
            seed: 1,
            profile: SimProfile::Fast,
            speed: 1,
            url: None,
            throttle: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    pub commands_in_flight_max: usize,
    pub deployments_open_max: usize,
    #[serde(with = "duration")]
    pub shutdown_grace: u64,
    /// A replica's lease on its apps (ms): a dead replica's apps move within this plus
    /// one scan.
    #[serde(with = "duration")]
    pub lease_ttl: u64,
    /// How often a replica scans for apps to take over (ms).
    #[serde(with = "duration")]
    pub scan: u64,
    /// How long a deployment waits for a store that does not answer before this replica
    /// lets it go (ms; it is resumed once the store answers).
    #[serde(with = "duration")]
    pub store_retry: u64,
    /// Percent of AWS's published API rates this service may spend in the account
    /// (split across live replicas); the rest is left to other callers. 0 turns the
    /// budget off (AWS's own throttling alone).
    pub api_share: u32,
    /// Percent of every API bucket kept for rollbacks (0–50).
    pub api_reserve: u32,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let l = crate::runner::Limits::default();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        RunnerConfig {
            commands_in_flight_max: l.commands_in_flight_max,
            deployments_open_max: l.deployments_open_max,
            shutdown_grace: ms(l.shutdown_grace),
            lease_ttl: ms(l.lease_ttl),
            scan: ms(l.scan_every),
            store_retry: ms(l.store_retry_max),
            api_share: l.api_budget.map_or(0, |b| b.share_permille.div_ceil(10)),
            api_reserve: l.api_budget.map_or(20, |b| b.reserve_permille / 10),
        }
    }
}

impl RunnerConfig {
    pub fn limits(&self) -> crate::runner::Limits {
        crate::runner::Limits {
            commands_in_flight_max: self.commands_in_flight_max,
            deployments_open_max: self.deployments_open_max,
            shutdown_grace: std::time::Duration::from_millis(self.shutdown_grace),
            lease_ttl: std::time::Duration::from_millis(self.lease_ttl),
            scan_every: std::time::Duration::from_millis(self.scan),
            store_retry_max: std::time::Duration::from_millis(self.store_retry),
            api_budget: (self.api_share > 0).then_some(bluegreen_core::budget::BudgetShape {
                share_permille: self.api_share * 10,
                reserve_permille: self.api_reserve * 10,
            }),
            ..crate::runner::Limits::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    cloud: CloudConfig,
    #[serde(default)]
    runner: RunnerConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    apps: Vec<RawApp>,
    #[serde(default)]
    notify: Vec<crate::notify::NotifyConfig>,
}

/// One configured app.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    pub name: String,
    /// The ECR repository whose pushes deploy this app (none: only the API deploys it).
    pub repository: Option<String>,
    /// The registry a push must come from; `None` (no `registry` and a listener that is
    /// not an ARN): no push deploys this app.
    pub registry: Option<Registry>,
    /// Tag globs (`*`, `?`) a push must match; empty: every push of the repository.
    pub tags: Vec<String>,
    /// The image `bluegreen plan` shows and the simulated world starts from.
    pub image: Option<String>,
    /// The deployment spec with a placeholder artifact (each deployment sets its image).
    pub draft: SpecDraft,
}

impl AppConfig {
    /// Does a push of `repository` with `tag` deploy this app?
    pub fn watches(&self, repository: &str, tag: Option<&str>) -> bool {
        if self.repository.as_deref() != Some(repository) {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        tag.is_some_and(|t| self.tags.iter().any(|g| glob_match(g, t)))
    }

    /// The spec for deploying `image`.
    pub fn spec(&self, image: &str) -> Result<DeploymentSpec, bluegreen_core::SpecError> {
        let mut d = self.draft.clone();
        d.artifact = Artifact::Image(Name::from(image));
        DeploymentSpec::new(d)
    }
}

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    BuiltIn,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub origin: Origin,
    pub server: ServerConfig,
    pub cloud: CloudConfig,
    pub runner: RunnerConfig,
    pub log: LogConfig,
    pub apps: Vec<AppConfig>,
    /// `[[notify]]` entries (URLs resolved from the environment at start-up).
    pub notify: Vec<crate::notify::NotifyConfig>,
}

/// `*` matches any run of characters, `?` any one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point: O(|p|·|t|) worst case, bounded.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Scalar keys the environment may override, per section.
const OVERRIDABLE: [(&str, &[&str]); 4] = [
    (
        "server",
        &[
            "listen",
            "store",
            "request_timeout",
            "header_read_timeout",
            "connections_max",
            "api_rate",
            "api_burst",
            "webhook_rate",
            "webhook_burst",
            "apps_cache_ttl",
            "retention",
        ],
    ),
    (
        "cloud",
        &["kind", "seed", "profile", "speed", "url", "throttle"],
    ),
    (
        "runner",
        &[
            "commands_in_flight_max",
            "deployments_open_max",
            "shutdown_grace",
            "lease_ttl",
            "scan",
            "store_retry",
            "api_share",
            "api_reserve",
        ],
    ),
    ("log", &["format"]),
];

/// Environment variables that hold secrets (read where they are used, never from the file).
pub const SECRET_VARS: [&str; 3] = [
    "BLUEGREEN_API_TOKEN",
    "BLUEGREEN_WEBHOOK_TOKEN",
    "BLUEGREEN_HOOK_SECRET",
];

impl Config {
    /// `--config FILE` if given, else `./bluegreen.toml` if present, else the built-in
    /// example; then the environment's overrides.
    pub fn load(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let implicit = Path::new("bluegreen.toml");
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None if implicit.exists() => Some(implicit.to_path_buf()),
            None => None,
        };
        match path {
            Some(p) => {
                let origin = p.display().to_string();
                let err = |message: String| ConfigError {
                    origin: origin.clone(),
                    key: "-".into(),
                    line: None,
                    message,
                };
                let meta = std::fs::metadata(&p).map_err(|e| err(format!("cannot read: {e}")))?;
                if meta.len() > FILE_BYTES_MAX {
                    return Err(err(format!("larger than {FILE_BYTES_MAX} bytes")));
                }
                let text =
                    std::fs::read_to_string(&p).map_err(|e| err(format!("cannot read: {e}")))?;
                Config::parse(&text, Origin::File(p), env)
            }
            None => Config::parse(EXAMPLE_TOML, Origin::BuiltIn, env),
        }
    }

    /// The process environment's `BLUEGREEN_*` variables.
    pub fn environment() -> BTreeMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("BLUEGREEN_"))
            .collect()
    }

    pub fn parse(
        text: &str,
        origin: Origin,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let origin_name = match &origin {
            Origin::File(p) => p.display().to_string(),
            Origin::BuiltIn => "built-in example".to_string(),
        };
        let lines = LineIndex::new(text);
        let doc = DeTable::parse(text).map_err(|e| ConfigError {
            origin: origin_name.clone(),
            key: "-".into(),
            line: e.span().map(|s| lines.line(s.start)),
            message: e.message().trim().to_string(),
        })?;
        let locate = |key: &str| -> Option<usize> {
            find_span(doc.get_ref(), key).map(|s| lines.line(s.start))
        };
        // Filled once the environment's overrides are applied: a check of an overridden
        // key blames the variable.
        let overridden: std::cell::RefCell<BTreeMap<String, String>> = Default::default();
        let at = |key: String, message: String| match overridden.borrow().get(&key) {
            Some(var) => ConfigError {
                origin: format!("environment variable {var}"),
                line: None,
                key,
                message,
            },
            None => ConfigError {
                origin: origin_name.clone(),
                line: locate(&key),
                key,
                message,
            },
        };
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .and_then(|s| key_at(doc.get_ref(), &s, String::new()))
                // An empty key (`"" = 1`) is still named (found by fuzz_the_config_loader).
                .map(|k| if k.is_empty() { "\"\"".to_string() } else { k })
                .unwrap_or_else(|| "-".into());
            let mut message = e.message().trim().to_string();
            if let Some(field) = unknown_field(&message)
                && ["token", "secret", "password"].iter().any(|s| field.contains(s))
            {
                message = format!(
                    "`{field}` looks like a secret: secrets are read from the environment only ({}), never from the config file",
                    SECRET_VARS.join(", ")
                );
            }
            ConfigError {
                origin: origin_name.clone(),
                line: e.span().map(|s| lines.line(s.start)),
                key,
                message,
            }
        })?;
        if has_password(&raw.server.store) {
            return Err(at(
                "server.store".into(),
                "the URL holds a password: secrets stay out of the config file (set BLUEGREEN_SERVER_STORE, or PGPASSWORD)".into(),
            ));
        }
        *overridden.borrow_mut() = apply_env(&mut raw, env)?;

        let config_err = |key: &str, message: String| at(key.to_string(), message);
        if raw.server.listen.parse::<SocketAddr>().is_err() {
            return Err(config_err(
                "server.listen",
                format!(
                    "{:?} is not an address such as 127.0.0.1:8080",
                    raw.server.listen
                ),
            ));
        }
        if !(raw.server.store.starts_with("sqlite:")
            || raw.server.store.starts_with("postgres://")
            || raw.server.store.starts_with("postgresql://"))
        {
            return Err(config_err(
                "server.store",
                "must be sqlite://FILE or postgres://…".into(),
            ));
        }
        check_server_limits(&raw.server).map_err(|(key, m)| config_err(key, m))?;
        if !(1..=crate::runner::clock::SPEED_MAX).contains(&raw.cloud.speed) {
            return Err(config_err(
                "cloud.speed",
                format!("must be between 1 and {}", crate::runner::clock::SPEED_MAX),
            ));
        }
        match (&raw.cloud.kind, &raw.cloud.url) {
            (CloudKind::Remote, None) => {
                return Err(config_err(
                    "cloud.url",
                    "is required with kind = \"remote\" (the address `bluegreen sim-cloud` prints)"
                        .into(),
                ));
            }
            (CloudKind::Remote, Some(u))
                if !u.starts_with("http://") && !u.starts_with("https://") =>
            {
                return Err(config_err(
                    "cloud.url",
                    "must be an http:// or https:// URL".into(),
                ));
            }
            _ => {}
        }
        if raw.cloud.kind != CloudKind::Sim && raw.cloud.speed != 1 {
            return Err(config_err(
                "cloud.speed",
                "only the simulated cloud can run faster than real time".into(),
            ));
        }
        if raw.runner.api_share > 100 {
            return Err(config_err(
                "runner.api_share",
                "is a percent of AWS's API rates: 0 (no budget) to 100".into(),
            ));
        }
        if raw.runner.api_reserve > 50 {
            return Err(config_err(
                "runner.api_reserve",
                "is the percent of each API bucket kept for rollbacks: 0 to 50".into(),
            ));
        }
        if !(1..=100_000).contains(&raw.runner.commands_in_flight_max) {
            return Err(config_err(
                "runner.commands_in_flight_max",
                "must be between 1 and 100000".into(),
            ));
        }
        if !(1..=1_000_000).contains(&raw.runner.deployments_open_max) {
            return Err(config_err(
                "runner.deployments_open_max",
                "must be between 1 and 1000000".into(),
            ));
        }
        if !(1_000..=600_000).contains(&raw.runner.lease_ttl) {
            return Err(config_err(
                "runner.lease_ttl",
                "must be between 1s and 10m".into(),
            ));
        }
        if !(50..=60_000).contains(&raw.runner.scan) || raw.runner.scan > raw.runner.lease_ttl {
            return Err(config_err(
                "runner.scan",
                "must be between 50ms and 1m, and no longer than runner.lease_ttl".into(),
            ));
        }
        if raw.runner.store_retry > 86_400_000 {
            return Err(config_err(
                "runner.store_retry",
                "must be at most 24h".into(),
            ));
        }
        if raw.apps.len() > APPS_MAX {
            return Err(config_err("apps", format!("at most {APPS_MAX} apps")));
        }
        let mut apps = Vec::with_capacity(raw.apps.len());
        let mut names = BTreeMap::new();
        for (i, app) in raw.apps.into_iter().enumerate() {
            let prefix = format!("apps[{i}]");
            if let Some(first) = names.insert(app.name.clone(), i) {
                return Err(at(
                    format!("{prefix}.name"),
                    format!("app {:?} is already defined by apps[{first}]", app.name),
                ));
            }
            apps.push(
                app_config(app).map_err(|(key, message)| at(format!("{prefix}.{key}"), message))?,
            );
        }
        let app_names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        for (i, n) in raw.notify.iter().enumerate() {
            n.check(&app_names)
                .map_err(|(key, message)| at(format!("notify[{i}].{key}"), message))?;
        }
        Ok(Config {
            origin,
            server: raw.server,
            cloud: raw.cloud,
            runner: raw.runner,
            log: raw.log,
            apps,
            notify: raw.notify,
        })
    }

    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Each app's template, by name (what the runner deploys from).
    /// The runner's limits; a simulated account without API limits (`throttle = false`)
    /// needs no budget either.
    pub fn runner_limits(&self) -> crate::runner::Limits {
        let mut limits = self.runner.limits();
        if self.cloud.kind == CloudKind::Sim && !self.cloud.throttle {
            limits.api_budget = None;
        }
        limits
    }

    pub fn templates(&self) -> BTreeMap<String, SpecDraft> {
        self.apps
            .iter()
            .map(|a| (a.name.clone(), a.draft.clone()))
            .collect()
    }

    /// Each app's draft with the image the simulated world starts from.
    pub fn seed_drafts(&self) -> Vec<SpecDraft> {
        self.apps
            .iter()
            .map(|a| {
                let mut d = a.draft.clone();
                d.artifact = Artifact::Image(
                    a.image
                        .clone()
                        .unwrap_or_else(|| format!("{}:initial", a.name))
                        .into(),
                );
                d
            })
            .collect()
    }

    pub fn listen(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated on load")
    }
}

/// The `[server]` limits' ranges: `(key, message)` for the first one out of range.
fn check_server_limits(s: &ServerConfig) -> Result<(), (&'static str, String)> {
    let ms = |key: &'static str, v: u64, min: u64, max: u64, what: &str| {
        if (min..=max).contains(&v) {
            Ok(())
        } else {
            Err((key, format!("must be between {what}")))
        }
    };
    ms(
        "server.request_timeout",
        s.request_timeout,
        100,
        3_600_000,
        "100ms and 1h",
    )?;
    ms(
        "server.header_read_timeout",
        s.header_read_timeout,
        100,
        600_000,
        "100ms and 10m",
    )?;
    ms(
        "server.apps_cache_ttl",
        s.apps_cache_ttl,
        0,
        3_600_000,
        "0s and 1h",
    )?;
    ms(
        "server.retention",
        s.retention,
        1_000,
        100 * 365 * 86_400_000,
        "1s and 100 years",
    )?;
    if !(1..=1_000_000).contains(&s.connections_max) {
        return Err((
            "server.connections_max",
            "must be between 1 and 1000000".into(),
        ));
    }
    for (key, v) in [
        ("server.api_rate", s.api_rate),
        ("server.api_burst", s.api_burst),
        ("server.webhook_rate", s.webhook_rate),
        ("server.webhook_burst", s.webhook_burst),
    ] {
        if !(1..=1_000_000).contains(&v) {
            return Err((key, "must be between 1 and 1000000".into()));
        }
    }
    Ok(())
}

fn has_password(url: &str) -> bool {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => url[s + 3..at].contains(':'),
        _ => false,
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests;
