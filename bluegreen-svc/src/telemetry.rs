//! Logs and metrics: tracing set-up (`--log-format text|json`) and the Prometheus
//! metrics the service exports on `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bluegreen_deployments_total` | counter | `outcome` (completed, rolled-back, failed, rejected) |
//! | `bluegreen_deployments_in_flight` | gauge | |
//! | `bluegreen_phase_duration_seconds` | histogram | `phase` |
//! | `bluegreen_rollbacks_total` | counter | `reason` (alarm, unhealthy, hook, timeout, aborted, …) |
//! | `bluegreen_commands_total` | counter | `command`, `result` (ok, retryable, fatal, ambiguous) |
//! | `bluegreen_command_duration_seconds` | histogram | `command` |
//! | `bluegreen_aws_calls_total` | counter | `operation`, `result` (recorded by the AWS adapter) |
//! | `bluegreen_webhook_events_total` | counter | `outcome` (deployed, queued, repeat, ignored, rejected) |
//! | `bluegreen_notifications_total` | counter | `kind` (slack, webhook), `result` (delivered, failed, dropped) |
//! | `bluegreen_notification_retries_total` | counter | `kind` |

use std::sync::OnceLock;
use std::time::Duration;

use bluegreen_core::{CommandError, CommandResult, ErrorClass, PhaseName};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const DEPLOYMENTS_TOTAL: &str = "bluegreen_deployments_total";
pub const IN_FLIGHT: &str = "bluegreen_deployments_in_flight";
pub const PHASE_DURATION: &str = "bluegreen_phase_duration_seconds";
pub const ROLLBACKS_TOTAL: &str = "bluegreen_rollbacks_total";
pub const COMMANDS_TOTAL: &str = "bluegreen_commands_total";
pub const COMMAND_DURATION: &str = "bluegreen_command_duration_seconds";
pub const AWS_CALLS_TOTAL: &str = "bluegreen_aws_calls_total";
pub const WEBHOOK_EVENTS_TOTAL: &str = "bluegreen_webhook_events_total";
pub const WEBHOOK_IGNORED_TOTAL: &str = "bluegreen_webhook_ignored_total";
pub const ALARM_EVENTS_TOTAL: &str = "bluegreen_alarm_events_total";
pub const RATE_LIMITED_TOTAL: &str = "bluegreen_http_rate_limited_total";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "bluegreen_http_connections_refused_total";
pub const PRUNED_TOTAL: &str = "bluegreen_deployments_pruned_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder (once per process; later calls return the same
/// handle). `None` when another recorder was installed first by the embedding program.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let phase_buckets = [
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ];
            let command_buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(PHASE_DURATION.into()), &phase_buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMAND_DURATION.into()),
                        &command_buckets,
                    )
                })
                .and_then(|b| b.install_recorder())
                .ok();
            if handle.is_some() {
                describe();
                // Deployments in flight is 0, not absent, before the first one starts.
                metrics::gauge!(IN_FLIGHT).set(0.0);
            }
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(DEPLOYMENTS_TOTAL, "Deployments finished, by outcome");
    metrics::describe_gauge!(IN_FLIGHT, "Deployments being driven right now");
    metrics::describe_histogram!(
        PHASE_DURATION,
        metrics::Unit::Seconds,
        "Time spent in each phase"
    );
    metrics::describe_counter!(ROLLBACKS_TOTAL, "Rollbacks started, by reason");
    metrics::describe_counter!(
        COMMANDS_TOTAL,
        "Cloud commands executed, by command and result"
    );
    metrics::describe_histogram!(
        COMMAND_DURATION,
        metrics::Unit::Seconds,
        "Cloud command latency"
    );
    metrics::describe_counter!(AWS_CALLS_TOTAL, "AWS API calls, by operation and result");
    metrics::describe_counter!(WEBHOOK_EVENTS_TOTAL, "ECR webhook events, by outcome");
    metrics::describe_counter!(
        crate::notify::NOTIFICATIONS_TOTAL,
        "Notifications, by kind and result"
    );
    metrics::describe_counter!(
        crate::notify::NOTIFICATION_RETRIES_TOTAL,
        "Notification attempts retried, by kind"
    );
    metrics::describe_counter!(
        WEBHOOK_IGNORED_TOTAL,
        "ECR webhook events acknowledged but ignored, by reason"
    );
    metrics::describe_counter!(
        ALARM_EVENTS_TOTAL,
        "CloudWatch alarm events, by outcome (rolled-back, ignored, unwatched, foreign-account, unavailable, rejected, ...)"
    );
    metrics::describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests answered 429, by token (api, webhook)"
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Connections answered 503 because server.connections_max were open"
    );
    metrics::describe_counter!(
        PRUNED_TOTAL,
        "Finished deployments deleted after server.retention"
    );
}

pub fn in_flight(delta: f64) {
    metrics::gauge!(IN_FLIGHT).increment(delta);
}

pub fn phase_duration(phase: PhaseName, ms: u64) {
    metrics::histogram!(PHASE_DURATION, "phase" => phase.as_str()).record(ms as f64 / 1000.0);
}

pub fn rollback(reason: &'static str) {
    metrics::counter!(ROLLBACKS_TOTAL, "reason" => reason).increment(1);
}

pub fn outcome(phase: PhaseName) {
    metrics::counter!(DEPLOYMENTS_TOTAL, "outcome" => phase.as_str()).increment(1);
}

pub fn command(name: &'static str, result: &Result<CommandResult, CommandError>, took: Duration) {
    let label = match result {
        Ok(_) => "ok",
        Err(e) => match e.class {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Fatal => "fatal",
            ErrorClass::Ambiguous => "ambiguous",
            ErrorClass::Throttled => "throttled",
        },
    };
    metrics::counter!(COMMANDS_TOTAL, "command" => name, "result" => label).increment(1);
    metrics::histogram!(COMMAND_DURATION, "command" => name).record(took.as_secs_f64());
}

pub fn webhook(outcome: &'static str) {
    metrics::counter!(WEBHOOK_EVENTS_TOTAL, "outcome" => outcome).increment(1);
}

/// An ignored webhook event, by reason (`foreign-registry`, `unwatched`, …).
pub fn webhook_ignored(reason: &'static str) {
    metrics::counter!(WEBHOOK_IGNORED_TOTAL, "reason" => reason).increment(1);
}

/// A CloudWatch alarm event, by outcome.
pub fn alarm_event(outcome: &'static str) {
    metrics::counter!(ALARM_EVENTS_TOTAL, "outcome" => outcome).increment(1);
}

pub fn rate_limited(token: &'static str) {
    metrics::counter!(RATE_LIMITED_TOTAL, "token" => token).increment(1);
}

pub fn connection_refused() {
    metrics::counter!(CONNECTIONS_REFUSED_TOTAL).increment(1);
}

pub fn pruned(n: u64) {
    metrics::counter!(PRUNED_TOTAL).increment(n);
}

/// Log output format.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Set up tracing to stderr; `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
