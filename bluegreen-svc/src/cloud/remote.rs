//! One simulated account shared by several processes: `bluegreen sim-cloud` serves the
//! simulated world over loopback HTTP, and replicas configured with
//! `[cloud] kind = "remote"`, `url = "http://127.0.0.1:PORT"` drive it through
//! [`RemoteCloud`]. Several `bluegreen serve` replicas then see one account — what the HA
//! tests and benches need — and the world keeps a log of every call: which process sent
//! which command when, so a test can prove no two replicas drove one deployment at once.
//!
//! A test and demo tool: the world answers at once, on the wall clock (speed 1), with
//! the `[cloud] profile` timings.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bluegreen_core::{Cloud, Command, CommandError, CommandKind, CommandResult};

use crate::runner::Clock;
use serde::{Deserialize, Serialize};

/// The header naming the calling process.
pub const REPLICA_HEADER: &str = "x-bluegreen-replica";
/// Most calls the world's log keeps (older ones are dropped and counted).
pub const CALLS_MAX: usize = 1_000_000;

/// A command as the shared world received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Order of arrival.
    pub seq: u64,
    /// Wall-clock milliseconds when it arrived.
    pub at_ms: u64,
    /// The calling process (`<pid>/<random>`).
    pub replica: String,
    pub command: String,
    pub attempt: u32,
    /// The command kind (`ensure_green`, `observe`, …).
    pub kind: String,
    /// Changes the world (anything but an observation or a hook call).
    pub write: bool,
}

/// What `/v1/sim/execute` answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Ok(CommandResult),
    Err(CommandError),
}

/// A [`Cloud`] that forwards every command to a `bluegreen sim-cloud` process.
pub struct RemoteCloud {
    http: reqwest::Client,
    url: String,
    replica: String,
}

impl RemoteCloud {
    pub fn new(url: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cloud.url: {e}"))?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(RemoteCloud {
            http,
            url: format!("{}/v1/sim/execute", url.trim_end_matches('/')),
            replica: format!("{}/{nonce:08x}", std::process::id()),
        })
    }
}

impl Cloud for RemoteCloud {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let sent = self
            .http
            .post(&self.url)
            .header(REPLICA_HEADER, &self.replica)
            .json(command)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // Not connected at all: nothing reached the world.
            Err(e) if e.is_connect() => {
                return Err(CommandError::retryable(
                    "SimCloudUnreachable",
                    e.to_string(),
                ));
            }
            // Sent, answer lost: the world may have applied it.
            Err(e) => return Err(CommandError::ambiguous("SimCloudNoAnswer", e.to_string())),
        };
        match response.json::<Answer>().await {
            Ok(Answer::Ok(r)) => Ok(r),
            Ok(Answer::Err(e)) => Err(e),
            Err(e) => Err(CommandError::ambiguous("SimCloudBadAnswer", e.to_string())),
        }
    }
}

/// The shared world and its call log.
#[derive(Clone)]
pub struct SimServer {
    cloud: Arc<crate::cloud::sim::SimKind>,
    calls: Arc<Mutex<(u64, Vec<Call>)>>,
}

fn kind_name(kind: &CommandKind) -> (String, bool) {
    (kind.name().to_string(), kind.is_write())
}

impl SimServer {
    pub fn new(cloud: crate::cloud::sim::SimKind) -> Self {
        SimServer {
            cloud: Arc::new(cloud),
            calls: Arc::new(Mutex::new((0, Vec::new()))),
        }
    }

    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route("/v1/sim/execute", post(execute))
            .route("/v1/sim/calls", get(calls))
            .with_state(self)
    }
}

async fn execute(
    State(s): State<SimServer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let command: Command = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a command: {e}"),
            )
                .into_response();
        }
    };
    let replica = headers
        .get(REPLICA_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let (kind, write) = kind_name(&command.kind);
    {
        let mut log = s.calls.lock().expect("calls lock");
        log.0 += 1;
        let seq = log.0;
        if log.1.len() < CALLS_MAX {
            log.1.push(Call {
                seq,
                at_ms: crate::runner::SystemClock.now().as_millis(),
                replica,
                command: command.id.to_string(),
                attempt: command.attempt,
                kind,
                write,
            });
        }
    }
    let answer = match s.cloud.execute(&command).await {
        Ok(r) => Answer::Ok(r),
        Err(e) => Answer::Err(e),
    };
    Json(answer).into_response()
}

async fn calls(State(s): State<SimServer>) -> Response {
    let log = s.calls.lock().expect("calls lock");
    Json(&log.1).into_response()
}
