//! The runner: drives many deployments at once on tokio, generic over the [`Cloud`] port.
//!
//! - One task per running deployment ([`driver`]) owns its [`Deployment`]; it reads the
//!   clock once per turn, hands the machine its inputs, journals every input and output,
//!   and persists the journal lines *and* the snapshot before any command of the turn is
//!   handed to the cloud (write-ahead). A crash at any point resumes from the last
//!   persisted turn with `Input::Restarted`: the machine re-sends reads and resolves
//!   writes that were out by observation, so nothing non-idempotent runs twice.
//! - One deployment per app at a time. While one runs, at most one more waits in the
//!   app's queue; a newer submission replaces the queued one (which becomes
//!   `superseded` and never touches the cloud). See `docs/service.md` for the rules.
//! - Everything is bounded: commands in flight across all deployments (a semaphore),
//!   open deployments, each driver's control channel, the store's write queue.

pub mod clock;
mod driver;
mod lease;

use lease::{heartbeat, host_name, take_lease};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::{
    Artifact, Cloud, Deployment, DeploymentId, DeploymentSpec, Input, OperatorRequest, Refused,
    SpecDraft, SpecError, Timestamp,
};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};

use crate::store::{NewRow, RowState, Store, StoreError, Stored, image_key};
pub use clock::{Clock, ScaledClock, SystemClock};

/// Capacity of a driver's control channel (operator requests waiting for its next turn).
pub const CONTROL_QUEUE_MAX: usize = 16;

/// The runner's bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Commands executing at once across every deployment.
    pub commands_in_flight_max: usize,
    /// Deployments running or queued at once; more submissions get 503.
    pub deployments_open_max: usize,
    /// On shutdown, how long drivers wait for commands already out before they exit
    /// (what is still out then is resolved at the next start).
    pub shutdown_grace: Duration,
    /// The controller lease (one runner per store): renewed every third of this; a
    /// runner that cannot renew it stops driving.
    pub lease_ttl: Duration,
    /// How long `start` waits for a lease another live runner holds (zero: fail at once).
    pub lease_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            commands_in_flight_max: 256,
            deployments_open_max: 20_000,
            shutdown_grace: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(15),
            lease_wait: Duration::from_secs(20),
        }
    }
}

/// Who asked for a deployment: the API may supersede, a webhook push always queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api { supersede: bool },
    Webhook,
}

/// A request to deploy `image` to `app`.
#[derive(Clone, Debug)]
pub struct Submit {
    pub app: String,
    pub image: String,
    pub source: Source,
    /// issue 10: the push event's `time` (webhook submissions only) — what admission
    /// orders pushes by (a push older than the newest accepted one is stale).
    pub event_time: Option<Timestamp>,
}

/// What a submission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// A new deployment, started at once or queued behind the app's running one.
    Created { id: DeploymentId, queued: bool },
    /// The same app + image is already queued or running (or, for a webhook event, was
    /// deployed before): nothing new was made.
    Existing { id: DeploymentId },
}

impl Submitted {
    pub fn id(&self) -> &DeploymentId {
        match self {
            Submitted::Created { id, .. } | Submitted::Existing { id } => id,
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
    #[error(
        "another controller ({holder}) is driving this store until {until} at least; talk to it (--server) or stop it"
    )]
    Busy { holder: String, until: Timestamp },
}

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("no deployment {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(Refused),
    #[error("deployment {0} is not being driven by this process (shutting down?)")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A message to a driver.
pub(crate) enum Control {
    Operator(OperatorRequest, oneshot::Sender<Result<(), Refused>>),
}

struct Active {
    id: DeploymentId,
    image_key: String,
    tx: mpsc::Sender<Control>,
}

struct Queued {
    deployment: Deployment,
    image_key: String,
    seq: u64,
}

#[derive(Default)]
struct Slot {
    active: Option<Active>,
    queued: Option<Queued>,
}

/// Per-app slots, each behind its own lock: submissions for different apps never wait
/// for each other (only for the store's group commit).
#[derive(Default)]
struct Table {
    apps: std::sync::Mutex<BTreeMap<String, Arc<Mutex<Slot>>>>,
    /// Deployments running or queued.
    open: AtomicUsize,
}

impl Table {
    fn slot(&self, app: &str) -> Arc<Mutex<Slot>> {
        let mut apps = self.apps.lock().expect("table lock");
        apps.entry(app.to_string()).or_default().clone()
    }
}

pub(crate) struct Inner<C> {
    pub(crate) cloud: Arc<C>,
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    templates: BTreeMap<String, SpecDraft>,
    table: Table,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) limits: Limits,
    pub(crate) shutdown: watch::Sender<bool>,
    stopping: AtomicBool,
    /// Every driver holds a clone; shutdown waits until all are dropped.
    alive: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    gone: Mutex<mpsc::Receiver<()>>,
    pub(crate) running: AtomicUsize,
    /// This runner's lease owner id: `<host>/<pid>/<start ms>`.
    owner: String,
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

impl<C: Cloud + 'static> Runner<C> {
    /// Start a runner: resumes every unfinished deployment in `store` (running ones with
    /// `Input::Restarted`, then each app's queued one when nothing runs for it).
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
        let owner = format!(
            "{}/{}/{}",
            host_name(),
            std::process::id(),
            SystemClock.now().as_millis()
        );
        take_lease(&store, &owner, &limits).await?;
        let (alive, gone) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            cloud: Arc::new(cloud),
            store,
            clock,
            templates,
            table: Table::default(),
            permits: Arc::new(Semaphore::new(limits.commands_in_flight_max)),
            limits,
            shutdown: watch::Sender::new(false),
            stopping: AtomicBool::new(false),
            alive: std::sync::Mutex::new(Some(alive)),
            gone: Mutex::new(gone),
            running: AtomicUsize::new(0),
            owner,
        });
        let runner = Runner { inner };
        runner.resume().await?;
        tokio::spawn(heartbeat(runner.clone()));
        Ok(runner)
    }

    async fn resume(&self) -> Result<(), StoreError> {
        let open = self.inner.store.open().await?;
        let table = &self.inner.table;
        let mut queued: Vec<Stored> = Vec::new();
        for s in open {
            match s.state {
                RowState::Running => {
                    let slot = table.slot(&s.app);
                    let mut slot = slot.lock().await;
                    if let Some(a) = &slot.active {
                        // Two running rows for one app can only come from a bug or a
                        // hand edit: drive both (each is safe on its own) but say so.
                        tracing::error!(app = %s.app, first = %a.id, second = %s.id(), "two running deployments for one app");
                    }
                    tracing::info!(id = %s.id(), app = %s.app, phase = %s.deployment.phase_name(), "resuming deployment");
                    let key = s.image_key.clone();
                    slot.active = Some(self.spawn(s.deployment, s.seq, Input::Restarted, key));
                    table.open.fetch_add(1, Ordering::SeqCst);
                }
                RowState::Queued => queued.push(s),
                _ => {}
            }
        }
        // Per app, the newest queued deployment supersedes any older one (two can only
        // be left by a crash between queueing one and superseding the other).
        let mut by_app: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for s in queued {
            by_app.entry(s.app.clone()).or_default().push(s);
        }
        for (app, mut rows) in by_app {
            let newest = rows.pop().expect("at least one per app");
            for old in rows {
                let note = format!("superseded by {}", newest.id());
                self.inner
                    .store
                    .set_state(old.id(), RowState::Superseded, Some(note))
                    .await?;
            }
            let slot = table.slot(&app);
            let mut slot = slot.lock().await;
            table.open.fetch_add(1, Ordering::SeqCst);
            let q = Queued {
                seq: newest.seq,
                image_key: newest.image_key,
                deployment: newest.deployment,
            };
            if slot.active.is_none() {
                slot.active = Some(self.spawn(q.deployment, q.seq, Input::Wake, q.image_key));
            } else {
                slot.queued = Some(q);
            }
        }
        Ok(())
    }

    fn spawn(&self, d: Deployment, seq: u64, first: Input, image_key: String) -> Active {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE_MAX);
        let alive = self
            .inner
            .alive
            .lock()
            .expect("alive lock")
            .clone()
            .unwrap_or_else(|| mpsc::channel(1).0);
        let id = d.id().clone();
        tokio::spawn(driver::drive(self.clone(), d, seq, first, rx, alive));
        Active { id, image_key, tx }
    }

    pub fn cloud(&self) -> &C {
        &self.inner.cloud
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// issue 10: the semaphore bounding commands in flight (`runner.commands_in_flight_max`);
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

    /// The configured apps' templates (their `artifact` is a placeholder).
    pub fn templates(&self) -> &BTreeMap<String, SpecDraft> {
        &self.inner.templates
    }

    /// Deployments being driven right now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }

    /// The app's running and queued deployment ids.
    pub async fn app_slot(&self, app: &str) -> (Option<DeploymentId>, Option<DeploymentId>) {
        let slot = self.inner.table.slot(app);
        let s = slot.lock().await;
        (
            s.active.as_ref().map(|a| a.id.clone()),
            s.queued.as_ref().map(|q| q.deployment.id().clone()),
        )
    }

    /// Deploy `image` to `app` (see the module docs for queueing and superseding).
    pub async fn submit(&self, req: Submit) -> Result<Submitted, SubmitError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        let template = self
            .inner
            .templates
            .get(&req.app)
            .ok_or_else(|| SubmitError::UnknownApp(req.app.clone()))?;
        let mut draft = template.clone();
        draft.artifact = Artifact::Image(req.image.clone());
        let spec = DeploymentSpec::new(draft).map_err(SubmitError::Invalid)?;
        let key = image_key(&req.image);

        let slot_lock = self.inner.table.slot(&req.app);
        let mut slot = slot_lock.lock().await;
        let open = self.inner.table.open.load(Ordering::SeqCst);
        if let Some(a) = slot.active.as_ref().filter(|a| a.image_key == key) {
            return Ok(Submitted::Existing { id: a.id.clone() });
        }
        if let Some(q) = slot.queued.as_ref().filter(|q| q.image_key == key) {
            return Ok(Submitted::Existing {
                id: q.deployment.id().clone(),
            });
        }
        if req.source == Source::Webhook
            && let Some(prior) = self.inner.store.find(&req.app, &key).await?
        {
            // A repeat delivery of a push (EventBridge delivers at least once).
            return Ok(Submitted::Existing {
                id: prior.id().clone(),
            });
        }
        let supersede = match (&slot.active, req.source) {
            (Some(a), Source::Api { supersede: false }) => {
                return Err(SubmitError::Conflict {
                    app: req.app.clone(),
                    active: a.id.clone(),
                });
            }
            (Some(a), Source::Api { supersede: true }) => Some(a.tx.clone()),
            _ => None,
        };
        let replaces_queued = slot.queued.is_some();
        if !replaces_queued && open >= self.inner.limits.deployments_open_max {
            return Err(SubmitError::Full(open));
        }
        let now = self.inner.clock.now();
        let n = self.inner.store.count(&req.app).await? + 1;
        let id = make_id(&req.app, now, n).map_err(SubmitError::Invalid)?;
        let d = Deployment::new(id.clone(), spec, now);
        let created = JournalLine {
            deployment: id.clone(),
            seq: 1,
            at: now,
            entry: JournalEntry::Created {
                spec: Box::new(d.spec().clone()),
            },
        };
        let queue = slot.active.is_some();
        let row = NewRow {
            deployment: d.clone(),
            app: req.app.clone(),
            image: req.image.clone(),
            image_key: key.clone(),
            state: if queue {
                RowState::Queued
            } else {
                RowState::Running
            },
        };
        self.inner.store.insert(row, vec![created]).await?;
        if queue {
            if let Some(old) = slot.queued.take() {
                let note = format!("superseded by {id}");
                tracing::info!(app = %req.app, old = %old.deployment.id(), new = %id, "queued deployment superseded");
                self.inner
                    .store
                    .set_state(old.deployment.id(), RowState::Superseded, Some(note))
                    .await?;
            }
            slot.queued = Some(Queued {
                deployment: d,
                image_key: key,
                seq: 1,
            });
            tracing::info!(app = %req.app, %id, "deployment queued");
        } else {
            slot.active = Some(self.spawn(d, 1, Input::Wake, key));
            tracing::info!(app = %req.app, %id, "deployment started");
        }
        if !replaces_queued {
            self.inner.table.open.fetch_add(1, Ordering::SeqCst);
        }
        drop(slot);
        if let Some(tx) = supersede {
            let (reply, rx) = oneshot::channel();
            let reason = Some(format!("superseded by {id}"));
            let request = OperatorRequest::Abort { reason };
            if tx.send(Control::Operator(request, reply)).await.is_ok()
                && let Ok(Err(refused)) = rx.await
            {
                tracing::info!(%id, %refused, "the running deployment cannot be aborted; the new one waits for it");
            }
        }
        Ok(Submitted::Created { id, queued: queue })
    }

    /// Apply an operator request to a deployment: sent to its driver when it runs; an
    /// abort cancels a queued one; anything else is refused (409) with the reason.
    pub async fn operate(&self, id: &str, request: OperatorRequest) -> Result<(), OperateError> {
        // The store says which app; that app's slot says whether it runs or waits.
        let stored = self
            .inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| OperateError::NotFound(id.to_string()))?;
        let slot_lock = self.inner.table.slot(&stored.app);
        let mut slot = slot_lock.lock().await;
        let is_queued = slot
            .queued
            .as_ref()
            .is_some_and(|q| q.deployment.id().as_str() == id);
        if is_queued {
            if !matches!(request, OperatorRequest::Abort { .. }) {
                return Err(OperateError::Refused(Refused {
                    request: request.name().to_string(),
                    phase: bluegreen_core::PhaseName::Preflight,
                    reason: "the deployment is queued behind the app's running one; only abort is allowed".into(),
                }));
            }
            let q = slot.queued.take().expect("checked above");
            self.inner.table.open.fetch_sub(1, Ordering::SeqCst);
            let note = match request {
                OperatorRequest::Abort { reason: Some(r) } => {
                    format!("cancelled while queued: {r}")
                }
                _ => "cancelled while queued by an operator".to_string(),
            };
            self.inner
                .store
                .set_state(q.deployment.id(), RowState::Cancelled, Some(note))
                .await?;
            return Ok(());
        }
        let target = slot
            .active
            .as_ref()
            .filter(|a| a.id.as_str() == id)
            .map(|a| a.tx.clone());
        drop(slot);
        if let Some(tx) = target {
            let (reply, rx) = oneshot::channel();
            tx.send(Control::Operator(request, reply))
                .await
                .map_err(|_| OperateError::Unavailable(id.to_string()))?;
            return match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(refused)) => Err(OperateError::Refused(refused)),
                Err(_) => Err(OperateError::Unavailable(id.to_string())),
            };
        }
        let refused = match stored.deployment.check_operator(&request) {
            Err(refused) => refused,
            Ok(()) => Refused {
                request: request.name().to_string(),
                phase: stored.deployment.phase_name(),
                reason: format!("the deployment is {}", stored.state.as_str()),
            },
        };
        Err(OperateError::Refused(refused))
    }

    /// A driver finished its deployment: free the app and start what is queued for it.
    pub(crate) async fn finished(&self, app: &str, id: &DeploymentId) {
        let slot_lock = self.inner.table.slot(app);
        let mut slot = slot_lock.lock().await;
        if slot.active.as_ref().is_some_and(|a| &a.id == id) {
            slot.active = None;
            self.inner.table.open.fetch_sub(1, Ordering::SeqCst);
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            return; // the queued one starts at the next boot
        }
        if let Some(q) = slot.queued.take() {
            tracing::info!(%app, id = %q.deployment.id(), "starting queued deployment");
            slot.active = Some(self.spawn(q.deployment, q.seq, Input::Wake, q.image_key));
        }
    }

    /// A driver stopped without finishing (shutdown or a store failure).
    pub(crate) async fn detached(&self, app: &str, id: &DeploymentId) {
        let slot_lock = self.inner.table.slot(app);
        let slot = slot_lock.lock().await;
        if slot.active.as_ref().is_some_and(|a| &a.id == id) {
            // Keep the slot occupied so no second deployment of the app starts in this
            // process: the stopped one resumes at the next boot.
            tracing::warn!(%app, %id, "deployment detached; it resumes at the next start");
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Stop: refuse new submissions, let every driver persist and exit (waiting up to
    /// the grace period for commands already out), then flush the store.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self.inner.shutdown.send(true);
        drop(self.inner.alive.lock().expect("alive lock").take());
        let mut gone = self.inner.gone.lock().await;
        // Returns None once every driver has dropped its sender.
        let _ = gone.recv().await;
        if let Err(e) = self.inner.store.release_lease(&self.inner.owner).await {
            tracing::warn!(error = %e, "could not release the controller lease; it expires by itself");
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
}
