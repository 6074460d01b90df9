//! The runner: drives deployments on tokio, generic over the [`Cloud`] port, as one of
//! any number of replicas sharing one store (DESIGN §5 "Several replicas").
//!
//! - **Admission** (submit, supersede, queue, cancel, push ordering, holding an app
//!   after a failure) is the core's [`bluegreen_core::admission::Admission`] value,
//!   applied in one store transaction on the app's row: any replica takes any request.
//! - **One driver per app**: the replica holding the app's lease drives its running
//!   deployment ([`driver`]): it reads the clock once per turn, journals every input and
//!   output, and persists the journal lines *and* the snapshot — fenced by the lease's
//!   epoch — before any command of the turn is handed to the cloud (write-ahead). A
//!   refused (fenced) write stops the driver before it sends another command.
//! - **Takeover** ([`replica`]): every replica scans for apps whose holder is gone and
//!   resumes their deployments with `Input::Restarted` (writes that were out are resolved
//!   by observation). Leases live by the database's clock and spread across replicas.
//! - Everything is bounded: commands in flight across all deployments (a semaphore),
//!   open deployments, each driver's control channel, the store's write queue, store
//!   retries during an outage.

pub mod budget;
pub mod clock;
mod driver;
mod replica;
#[cfg(test)]
mod signal_tests;
mod submit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bluegreen_core::admission::Ignored;
use bluegreen_core::{Cloud, DeploymentId, Refused, SpecDraft, SpecError, Timestamp};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};

use crate::store::{Store, StoreError};
pub use clock::{Clock, ScaledClock, SystemClock};

/// Capacity of a driver's control channel (operator requests waiting for its next turn).
pub const CONTROL_QUEUE_MAX: usize = 16;

/// The runner's bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Commands executing at once across every deployment.
    pub commands_in_flight_max: usize,
    /// Deployments running or queued at once (across replicas); more submissions get 503.
    pub deployments_open_max: usize,
    /// On shutdown, how long drivers wait for commands already out before they exit
    /// (what is still out then is resolved by whoever drives the app next).
    pub shutdown_grace: Duration,
    /// A replica's lease on its apps lives this long past its last heartbeat (by the
    /// database's clock); heartbeats go every third of it. A dead replica's apps are
    /// taken over within this plus one scan.
    pub lease_ttl: Duration,
    /// How often a replica scans for apps to take over and requests to answer.
    pub scan_every: Duration,
    /// How long a driver keeps retrying a store that does not answer before it lets the
    /// deployment go (the next scan, once the store answers, resumes it).
    pub store_retry_max: Duration,
    /// How long an operator request for a deployment another replica drives waits for
    /// that replica's answer.
    pub request_wait: Duration,
    /// The account's API budget this service spends (split across live replicas);
    /// `None`: no client-side pacing (AWS's own throttling alone).
    pub api_budget: Option<bluegreen_core::budget::BudgetShape>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            commands_in_flight_max: 256,
            deployments_open_max: 20_000,
            shutdown_grace: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(15),
            scan_every: Duration::from_secs(1),
            store_retry_max: Duration::from_secs(300),
            request_wait: Duration::from_secs(10),
            api_budget: Some(bluegreen_core::budget::BudgetShape::DEFAULT),
        }
    }
}

/// Who asked for a deployment: the API may supersede; a webhook push always queues and
/// is ordered by its event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api { supersede: bool },
    Webhook { event_time: Option<Timestamp> },
}

/// A request to deploy `image` to `app`.
#[derive(Clone, Debug)]
pub struct Submit {
    pub app: String,
    pub image: String,
    pub source: Source,
}

/// What a submission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// A new deployment, started at once or queued behind the app's running one.
    Created { id: DeploymentId, queued: bool },
    /// The same app + image is already queued or running (or, for a webhook event, was
    /// deployed before): nothing new was made.
    Existing { id: DeploymentId },
    /// Nothing was made, for this reason (a stale push, a held app).
    Ignored(Ignored),
}

impl Submitted {
    /// The deployment made or found (none when the submission was ignored).
    pub fn id(&self) -> Option<&DeploymentId> {
        match self {
            Submitted::Created { id, .. } | Submitted::Existing { id } => Some(id),
            Submitted::Ignored(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no app named {0:?} is configured")]
    UnknownApp(String),
    #[error(
        "app {app} already has deployment {active} running (pass \"supersede\": true to replace it)"
    )]
    Conflict { app: String, active: DeploymentId },
    #[error("{0}")]
    Invalid(SpecError),
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("{0} deployments are already open; try again later")]
    Full(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("no deployment {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(Refused),
    #[error(
        "deployment {0} is not being driven right now (its replica is stopping or gone); retry shortly"
    )]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one running deployment made of an alarm event: `Ok` — its rollback started;
/// `Err(Refused)` — why not (already rolling back, a phase that does not watch alarms, a
/// stale event); `Err(Unavailable)` — no replica drives it right now (polling will still
/// read the alarm once one does).
#[derive(Debug)]
pub struct AlarmDelivery {
    pub deployment: String,
    pub outcome: Result<(), OperateError>,
}

/// A message to a driver: an operator's request or an alarm event, answered with
/// `Ok` (applied; for an alarm: the rollback started) or why not.
pub(crate) enum Control {
    Signal(crate::store::Signal, oneshot::Sender<Result<(), Refused>>),
}

/// A deployment this replica drives.
pub(crate) struct Local {
    pub(crate) id: DeploymentId,
    pub(crate) epoch: u64,
    pub(crate) tx: mpsc::Sender<Control>,
    /// Set to stop the driver at once (its lease was lost): it sends nothing more.
    pub(crate) stop: watch::Sender<bool>,
}

/// This replica's standing: its lease on its apps is good until `valid_until` (a local
/// monotonic instant: the heartbeat's send time plus the TTL less a margin, so clock
/// skew between replicas and the database never extends it).
pub(crate) struct Standing {
    pub(crate) valid_until: std::sync::Mutex<Option<Instant>>,
    /// `true` while the lease is good; drivers wait on it before sending commands.
    pub(crate) ok: watch::Sender<bool>,
    /// The store answered the last heartbeat.
    pub(crate) store_ok: AtomicBool,
}

impl Standing {
    pub(crate) fn is_valid(&self) -> bool {
        self.valid_until
            .lock()
            .expect("standing lock")
            .is_some_and(|t| Instant::now() < t)
    }
}

pub(crate) struct Inner<C> {
    pub(crate) cloud: Arc<C>,
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    templates: BTreeMap<String, SpecDraft>,
    /// Apps this replica drives, by app name.
    pub(crate) drivers: std::sync::Mutex<BTreeMap<String, Local>>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) limits: Limits,
    pub(crate) shutdown: watch::Sender<bool>,
    stopping: AtomicBool,
    /// Every driver holds a clone; shutdown waits until all are dropped.
    alive: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    gone: Mutex<mpsc::Receiver<()>>,
    pub(crate) running: AtomicUsize,
    /// This replica's holder id: `<host>/<pid>/<random>` — random per process, so two
    /// containers that both run the binary as PID 1 on hosts of one name never share it.
    pub(crate) me: String,
    pub(crate) standing: Standing,
    pub(crate) started_at: Timestamp,
    /// Notifications: set once by `serve`; each driver reports its persisted turns to it.
    pub(crate) notify: std::sync::OnceLock<crate::notify::Notifier>,
    /// The account's API budget as this replica spends it.
    pub(crate) budget: Option<budget::SharedBudget>,
}

/// The runner (cheap to clone).
pub struct Runner<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Runner<C> {
    fn clone(&self) -> Self {
        Runner {
            inner: self.inner.clone(),
        }
    }
}

/// A deployment id: `<app>-<yyyymmddThhmmss>-<n>` (n counts the app's deployments).
fn make_id(app: &str, now: Timestamp, n: u64) -> Result<DeploymentId, SpecError> {
    let stamp: String = now
        .to_string()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    DeploymentId::new(format!("{app}-{stamp}-{n}"))
}

/// A random holder id for this process.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}/{:016x}", std::process::id(), random_u64())
}

/// 64 random bits from the OS (the std hasher's per-process random keys as a fallback).
fn random_u64() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u64::from_le_bytes(buf);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

impl<C: Cloud + 'static> Runner<C> {
    /// Start a replica: register it (a heartbeat), then scan at once — resuming what this
    /// store's previous replicas left unfinished once their leases have expired.
    pub async fn start(
        cloud: C,
        store: Store,
        clock: Arc<dyn Clock>,
        templates: BTreeMap<String, SpecDraft>,
        limits: Limits,
    ) -> Result<Self, StartError> {
        assert!(limits.commands_in_flight_max > 0 && limits.deployments_open_max > 0);
        assert!(
            limits.lease_ttl >= Duration::from_millis(300),
            "lease TTL too short to renew"
        );
        let (alive, gone) = mpsc::channel(1);
        let budget = limits
            .api_budget
            .map(|shape| budget::SharedBudget::new(shape, clock.clone()));
        let inner = Arc::new(Inner {
            cloud: Arc::new(cloud),
            store,
            clock,
            templates,
            drivers: std::sync::Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(limits.commands_in_flight_max)),
            limits,
            shutdown: watch::Sender::new(false),
            stopping: AtomicBool::new(false),
            alive: std::sync::Mutex::new(Some(alive)),
            gone: Mutex::new(gone),
            running: AtomicUsize::new(0),
            me: holder_id(),
            standing: Standing {
                valid_until: std::sync::Mutex::new(None),
                ok: watch::Sender::new(false),
                store_ok: AtomicBool::new(false),
            },
            started_at: SystemClock.now(),
            notify: std::sync::OnceLock::new(),
            budget,
        });
        let runner = Runner { inner };
        runner.beat().await?;
        tracing::info!(replica = %runner.inner.me, "replica registered");
        runner.scan().await;
        tokio::spawn(replica::heartbeat(runner.clone()));
        tokio::spawn(replica::scanner(runner.clone()));
        Ok(runner)
    }

    pub fn cloud(&self) -> &C {
        &self.inner.cloud
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The semaphore bounding commands in flight (`runner.commands_in_flight_max`);
    /// `GET /v1/apps` takes a permit per live listener read so the API's AWS calls stay
    /// inside the same limit as the deployments'.
    pub fn command_permits(&self) -> Arc<Semaphore> {
        self.inner.permits.clone()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn inner(&self) -> &Inner<C> {
        &self.inner
    }

    /// This replica's holder id.
    pub fn replica_id(&self) -> &str {
        &self.inner.me
    }

    /// The configured apps' templates (their `artifact` is a placeholder).
    pub fn templates(&self) -> &BTreeMap<String, SpecDraft> {
        &self.inner.templates
    }

    /// Deployments being driven by this replica right now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }

    /// Can this replica take work: not stopping, the store answered its last heartbeat
    /// and its lease is good (`/readyz`).
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.is_stopping() {
            return Err("shutting down");
        }
        if !self.inner.standing.store_ok.load(Ordering::SeqCst) {
            return Err("the store does not answer");
        }
        if !self.inner.standing.is_valid() {
            return Err("this replica's lease lapsed; renewing");
        }
        Ok(())
    }

    /// The app's running and queued deployment ids (from its admission state).
    pub async fn app_slot(&self, app: &str) -> (Option<DeploymentId>, Option<DeploymentId>) {
        match self.inner.store.app_row(app).await {
            Ok(Some(row)) => (
                row.admission.running().map(|e| e.id.clone()),
                row.admission.queued().map(|e| e.id.clone()),
            ),
            Ok(None) => (None, None),
            Err(e) => {
                tracing::warn!(%app, error = %e, "reading the app's queue failed");
                (None, None)
            }
        }
    }

    /// Why the app is held (a deployment failed), if it is.
    pub async fn app_hold(&self, app: &str) -> Option<String> {
        match self.inner.store.app_row(app).await {
            Ok(Some(row)) => row.admission.hold().map(|h| {
                format!(
                    "deployment {} failed ({}); release the app once its environments are checked",
                    h.by, h.reason
                )
            }),
            _ => None,
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Stop: refuse new submissions, let every driver persist and exit (waiting up to
    /// the grace period for commands already out), then give up this replica's leases so
    /// the others take its apps at once.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self.inner.shutdown.send(true);
        drop(self.inner.alive.lock().expect("alive lock").take());
        let mut gone = self.inner.gone.lock().await;
        // Returns None once every driver has dropped its sender.
        let _ = gone.recv().await;
        if let Err(e) = self.inner.store.leave(&self.inner.me).await {
            tracing::warn!(error = %e, "could not give up this replica's leases; they expire by themselves");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_app_time_and_ordinal() {
        let id = make_id("web", Timestamp::from_millis(1_795_316_645_678), 7).unwrap();
        assert_eq!(id.as_str(), "web-20261122T030405-7");
    }

    #[test]
    fn holder_ids_differ_between_processes_of_one_host_and_pid() {
        // Two containers, one hostname, both PID 1: the random part tells them apart.
        let a = holder_id();
        let b = holder_id();
        assert_ne!(a, b);
        assert_eq!(a.rsplit_once('/').unwrap().0, b.rsplit_once('/').unwrap().0);
    }
}
