//! Drive one deployment to its outcome from your own program — a CI step, a platform
//! CLI — with any [`Cloud`] (the AWS adapter, [`crate::cloud::aws::AwsCloud`], in production):
//! timers, the core's retries and error policy, optional persistence to resume from after
//! a crash (a snapshot file, or any [`SnapshotStore`] of yours), a progress callback, and
//! cancellation. No server, no database of ours.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bluegreen_svc::embed::Deploy;
//! let config = bluegreen_svc::config::Config::load(Some("bluegreen.toml".as_ref()), &Default::default())?;
//! let spec = config.app("web").ok_or("no app web")?.spec("web:v2")?;
//! let cloud = bluegreen_svc::cloud::aws::build().await?; // the standard AWS chain
//! let outcome = Deploy::new(cloud, spec)
//!     .snapshot("web-v2.json") // resume from here if this process dies
//!     .on_progress(|p| eprintln!("{} {}", p.status.phase, p.status.detail))
//!     .run()
//!     .await?;
//! std::process::exit(if outcome.succeeded() { 0 } else { 1 });
//! # }
//! ```
//!
//! What it does is what the service's runner does for one deployment: `handle(now,
//! input)`, drain `poll(now)`, execute each command concurrently (answers to attempts the
//! machine no longer waits for are dropped), sleep until the machine's next wake-up or the
//! next answer. With a snapshot (a path, or a [`SnapshotStore`] given to
//! [`Deploy::persist`]), the deployment is saved after every turn and before any command
//! of that turn is sent (a file atomically: a temporary file, then a rename), and a run
//! that finds a snapshot resumes it — the machine resolves whatever was in
//! flight by observation before it does anything else. Cancelling (the future given to
//! [`Deploy::cancel_on`] resolves) asks the machine to abort: it rolls back if the phase
//! allows it (an abort is refused once blue is being removed; the deployment then
//! completes), and `run` returns once the outcome is reached. Dropping the `run` future
//! stops at once; with a snapshot, the next `run` resumes.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::{
    Cloud, Command, CommandError, CommandResult, Deployment, DeploymentId, DeploymentSpec, Input,
    Notice, OperatorRequest, Output, PhaseName, Reason, Status,
};
use tokio::task::JoinSet;

use crate::runner::{Clock, SystemClock};

/// How long `run` waits for the outcome's tags before returning anyway.
const TAG_TIMEOUT: Duration = Duration::from_secs(10);

/// Most machine steps one run takes (far above any real deployment: a bound, not a
/// budget).
pub const STEPS_MAX: u64 = 50_000_000;

/// What the progress callback sees after every turn, and with every notice.
#[derive(Debug)]
pub struct Progress<'a> {
    pub status: &'a Status,
    /// The notice this call is about (a transition, a retry, a hook's answer), if any.
    pub notice: Option<&'a Notice>,
}

/// How the deployment ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub phase: PhaseName,
    pub reason: Option<Reason>,
    pub status: Status,
    /// The machine, for its journal-free history (`history()`) and knowledge.
    pub deployment: Deployment,
}

impl Outcome {
    /// Completed: green is live and blue is gone.
    pub fn succeeded(&self) -> bool {
        self.phase == PhaseName::Completed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("snapshot {place}: {message}")]
    Snapshot { place: String, message: String },
    #[error("snapshot {place} holds deployment {found}, not {wanted}")]
    OtherDeployment {
        place: String,
        found: String,
        wanted: String,
    },
    #[error("the deployment took more than {STEPS_MAX} machine steps")]
    Runaway,
}

/// Where the deployment's state is kept between turns, to resume from after a crash:
/// a file ([`FileSnapshot`], what [`Deploy::snapshot`] uses), or your own store (a
/// database row, an object in S3) — anything that can keep one string.
pub trait SnapshotStore: Send {
    /// Names it in errors (`web-v2.json`, `s3://…`).
    fn describe(&self) -> String;
    /// The snapshot saved last, if any.
    fn load(&self) -> Result<Option<String>, String>;
    /// Keep `json`; after this returns, a crash resumes from it. Called after every turn,
    /// before any command of that turn is sent.
    fn save(&self, json: &str) -> Result<(), String>;
}

/// A snapshot file, replaced atomically (a temporary file beside it, then a rename).
#[derive(Clone, Debug)]
pub struct FileSnapshot(pub PathBuf);

impl SnapshotStore for FileSnapshot {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn load(&self) -> Result<Option<String>, String> {
        match std::fs::read_to_string(&self.0) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn save(&self, json: &str) -> Result<(), String> {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &self.0))
            .map_err(|e| e.to_string())
    }
}

type Callback<'a> = Box<dyn FnMut(&Progress<'_>) + Send + 'a>;
type Cancel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One deployment to drive; see the module docs.
pub struct Deploy<'a, C> {
    cloud: Arc<C>,
    spec: DeploymentSpec,
    id: Option<DeploymentId>,
    clock: Arc<dyn Clock>,
    snapshot: Option<Box<dyn SnapshotStore + 'a>>,
    progress: Option<Callback<'a>>,
    cancel: Option<Cancel>,
}

impl<'a, C: Cloud + 'static> Deploy<'a, C> {
    pub fn new(cloud: C, spec: DeploymentSpec) -> Self {
        Deploy {
            cloud: Arc::new(cloud),
            spec,
            id: None,
            clock: Arc::new(SystemClock),
            snapshot: None,
            progress: None,
            cancel: None,
        }
    }

    /// The deployment's id (default: `<app>-<unix milliseconds>`). It seeds the
    /// machine's jitter and names idempotency tokens: a resumed run keeps the
    /// snapshot's.
    pub fn id(mut self, id: DeploymentId) -> Self {
        self.id = Some(id);
        self
    }

    /// The clock (default: the system's). Tests pass a faster one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Persist after every turn to the file `path`, and resume from it when it exists.
    pub fn snapshot(self, path: impl AsRef<Path>) -> Self {
        self.persist(FileSnapshot(path.as_ref().to_path_buf()))
    }

    /// Persist after every turn to `store`, and resume from what it holds.
    pub fn persist(mut self, store: impl SnapshotStore + 'a) -> Self {
        self.snapshot = Some(Box::new(store));
        self
    }

    /// Called after every turn (with the status) and for every notice.
    pub fn on_progress(mut self, f: impl FnMut(&Progress<'_>) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// When `cancel` resolves, abort (roll back) and run on to the outcome.
    pub fn cancel_on(mut self, cancel: impl Future<Output = ()> + Send + 'static) -> Self {
        self.cancel = Some(Box::pin(cancel));
        self
    }

    /// Drive the deployment to its outcome.
    pub async fn run(mut self) -> Result<Outcome, EmbedError> {
        let now = self.clock.now();
        let (mut d, first) = match self.resume()? {
            Some(d) => (d, Input::Restarted),
            None => {
                let id = match self.id.take() {
                    Some(id) => id,
                    None => default_id(&self.spec.app, now),
                };
                (Deployment::new(id, self.spec.clone(), now), Input::Wake)
            }
        };
        let mut inbox = vec![first];
        let mut flights: JoinSet<(std::sync::Arc<Command>, Result<CommandResult, CommandError>)> =
            JoinSet::new();
        let mut steps: u64 = 0;
        let mut cancel: Cancel = self
            .cancel
            .take()
            .unwrap_or_else(|| Box::pin(std::future::pending()));
        let mut cancelled = false;
        loop {
            // ---- the turn ----
            let now = self.clock.now();
            let mut commands = Vec::new();
            for input in inbox.drain(..) {
                // A refused abort (blue already being removed) changes nothing.
                let _ = d.handle(now, input);
                steps += 1;
            }
            let wake_at = loop {
                steps += 1;
                if steps > STEPS_MAX {
                    return Err(EmbedError::Runaway);
                }
                match d.poll(now) {
                    Output::Command(c) => commands.push(c),
                    Output::Notice(n) => self.report(&d, Some(&n)),
                    Output::Idle { wake_at } => break wake_at,
                }
            };
            // Written before anything of this turn reaches the cloud (write-ahead).
            self.persist_turn(&d)?;
            self.report(&d, None);
            if d.is_terminal() {
                flights.abort_all();
                // Which slot is live, on the target groups' tags: once, best effort
                // (informational; the listener is the truth).
                if let Some(kind) = d.outcome_tags() {
                    let tag = Command {
                        id: bluegreen_core::CommandId::new(d.id(), "tag-slots"),
                        attempt: 1,
                        kind,
                    };
                    let _ = tokio::time::timeout(TAG_TIMEOUT, self.cloud.execute(&tag)).await;
                }
                return Ok(Outcome {
                    phase: d.phase_name(),
                    reason: d.outcome_reason().cloned(),
                    status: d.status(),
                    deployment: d,
                });
            }
            for c in commands {
                let cloud = self.cloud.clone();
                flights.spawn(async move {
                    let result = cloud.execute(&c).await;
                    (c, result)
                });
            }
            // ---- wait for the next input ----
            let sleep = wake_at.map(|at| self.clock.until(at));
            tokio::select! {
                Some(joined) = flights.join_next(), if !flights.is_empty() => {
                    if let Ok((command, result)) = joined
                        && d.in_flight().any(|c| c.id == command.id && c.attempt == command.attempt)
                    {
                        inbox.push(Input::CommandDone { id: command.id.clone(), result });
                    }
                }
                _ = tokio::time::sleep(sleep.unwrap_or(Duration::ZERO)), if sleep.is_some() => {
                    inbox.push(Input::Wake);
                }
                _ = &mut cancel, if !cancelled => {
                    cancelled = true;
                    inbox.push(Input::Operator(OperatorRequest::Abort {
                        reason: Some("cancelled by the embedding program".into()),
                    }));
                }
            }
        }
    }

    fn report(&mut self, d: &Deployment, notice: Option<&Notice>) {
        if let Some(f) = self.progress.as_mut() {
            let status = d.status();
            f(&Progress {
                status: &status,
                notice,
            });
        }
    }

    fn resume(&self) -> Result<Option<Deployment>, EmbedError> {
        let Some(store) = &self.snapshot else {
            return Ok(None);
        };
        let Some(text) = store.load().map_err(|e| snapshot_error(&**store, e))? else {
            return Ok(None);
        };
        let d: Deployment =
            serde_json::from_str(&text).map_err(|e| snapshot_error(&**store, e.to_string()))?;
        if let Some(wanted) = &self.id
            && wanted != d.id()
        {
            return Err(EmbedError::OtherDeployment {
                place: store.describe(),
                found: d.id().to_string(),
                wanted: wanted.to_string(),
            });
        }
        Ok(Some(d))
    }

    fn persist_turn(&self, d: &Deployment) -> Result<(), EmbedError> {
        let Some(store) = &self.snapshot else {
            return Ok(());
        };
        let text = serde_json::to_string(d).map_err(|e| snapshot_error(&**store, e.to_string()))?;
        store.save(&text).map_err(|e| snapshot_error(&**store, e))
    }
}

fn snapshot_error(store: &dyn SnapshotStore, message: String) -> EmbedError {
    EmbedError::Snapshot {
        place: store.describe(),
        message,
    }
}

/// `<app>-<unix milliseconds>`, or `deployment-<ms>` for an app name that makes no id.
fn default_id(app: &str, now: bluegreen_core::Timestamp) -> DeploymentId {
    DeploymentId::new(format!("{app}-{}", now.as_millis()))
        .or_else(|_| DeploymentId::new(format!("deployment-{}", now.as_millis())))
        .expect("a plain id is valid")
}
