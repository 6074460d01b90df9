//! One replica among several: its heartbeat (which keeps its leases), the scan that
//! takes over apps whose holder is gone and answers operator requests routed to it, and
//! the life of each driver it runs (start, finish, stop on a lost lease, panics).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bluegreen_core::admission::Next;
use bluegreen_core::ids::stable_hash64;
use bluegreen_core::{Cloud, Deployment, DeploymentId, Input, PhaseName};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use super::driver::{self, End};
use super::{CONTROL_QUEUE_MAX, Control, Local, Runner, StartError, SystemClock};
use crate::runner::Clock;
use crate::store::{Fence, StoreError};

/// Apps one scan takes over or resumes at once.
const SCAN_PARALLEL_MAX: usize = 32;

/// Backoff while freeing an app after its deployment finished and the store fails.
const FINISH_DELAY_FIRST: Duration = Duration::from_millis(100);
const FINISH_DELAY_MAX: Duration = Duration::from_secs(5);

/// Keep the replica registered: a heartbeat every third of the TTL (each bounded by a
/// third of the TTL, so a hung store cannot stall it past the lease).
pub(super) async fn heartbeat<C: Cloud + 'static>(runner: Runner<C>) {
    let inner = runner.inner();
    let every = inner.limits.lease_ttl / 3;
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        match tokio::time::timeout(every, runner.beat()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            Err(_) => {
                inner.standing.store_ok.store(false, Ordering::SeqCst);
                tracing::warn!("heartbeat timed out: the store does not answer");
            }
        }
        if !inner.standing.is_valid() {
            let _ = inner.standing.ok.send(false);
        }
    }
}

/// Scan every `scan_every`: take over apps whose holder is gone, resume what this
/// replica holds but does not drive, answer routed operator requests.
pub(super) async fn scanner<C: Cloud + 'static>(runner: Runner<C>) {
    let inner = runner.inner();
    let mut shutdown = inner.shutdown.subscribe();
    let mut free_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.limits.scan_every) => {}
            _ = shutdown.changed() => return,
        }
        runner.scan_with(&mut free_since).await;
        if last_prune.elapsed() >= Duration::from_secs(60) {
            last_prune = Instant::now();
            let before = bluegreen_core::Timestamp::from_millis(
                inner.clock.now().as_millis().saturating_sub(10 * 60 * 1000),
            );
            if let Err(e) = inner.store.prune_requests(before).await {
                tracing::warn!(error = %e, "pruning old operator requests failed");
            }
        }
    }
}

/// The live replica an app prefers (rendezvous hashing: each app's preference is stable
/// and apps spread evenly; when a replica dies only its apps move).
fn preferred<'a>(app: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .max_by_key(|r| stable_hash64(format!("{app}\u{0}{r}").as_bytes()))
        .map(String::as_str)
}

impl<C: Cloud + 'static> Runner<C> {
    /// One heartbeat. After a gap in which this replica's lease lapsed (a store outage,
    /// a pause), its apps may have new holders: it stops their drivers *before* its lease
    /// counts as good again, so none of them sends another command.
    pub(super) async fn beat(&self) -> Result<(), StartError> {
        let inner = self.inner();
        let sent = Instant::now();
        let lapsed = !inner.standing.is_valid();
        let ttl_ms = u64::try_from(inner.limits.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let result = inner
            .store
            .heartbeat(&inner.me, ttl_ms, inner.started_at.as_millis())
            .await;
        if let Err(e) = result {
            inner.standing.store_ok.store(false, Ordering::SeqCst);
            return Err(e.into());
        }
        inner.standing.store_ok.store(true, Ordering::SeqCst);
        if lapsed {
            self.stop_lost().await?;
        }
        // The lease counts from before the heartbeat was sent, less a margin for the
        // database's own delay in writing it: never longer than the database grants.
        let good_for = inner.limits.lease_ttl - inner.limits.lease_ttl / 5;
        *inner.standing.valid_until.lock().expect("standing lock") = Some(sent + good_for);
        let _ = inner.standing.ok.send(true);
        Ok(())
    }

    /// Stop every driver whose app this replica no longer holds at the driver's epoch.
    async fn stop_lost(&self) -> Result<(), StoreError> {
        let inner = self.inner();
        let held: BTreeMap<String, u64> = inner.store.held(&inner.me).await?.into_iter().collect();
        let mut drivers = inner.drivers.lock().expect("drivers lock");
        let lost: Vec<String> = drivers
            .iter()
            .filter(|(app, l)| held.get(*app) != Some(&l.epoch))
            .map(|(app, _)| app.clone())
            .collect();
        for app in lost {
            if let Some(l) = drivers.remove(&app) {
                tracing::warn!(%app, id = %l.id, epoch = l.epoch, "lease lost: another replica drives this app now; stopping here");
                let _ = l.stop.send(true);
            }
        }
        Ok(())
    }

    /// A scan with no memory of free apps (at start).
    pub(super) async fn scan(&self) {
        self.scan_with(&mut BTreeMap::new()).await;
    }

    pub(super) async fn scan_with(&self, free_since: &mut BTreeMap<String, Instant>) {
        let inner = self.inner();
        if self.is_stopping() || !inner.standing.is_valid() {
            return;
        }
        if let Err(e) = self.stop_lost().await {
            tracing::warn!(error = %e, "scan: reading this replica's leases failed");
            return;
        }
        let (claims, live) = match (
            inner.store.claims(&inner.me).await,
            inner.store.live_replicas().await,
        ) {
            (Ok(c), Ok(l)) => {
                if let Some(b) = inner.budget.as_ref() {
                    b.set_replicas(l.len());
                }
                (c, l)
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "scan failed");
                return;
            }
        };
        let now = Instant::now();
        let mut seen = Vec::with_capacity(claims.len());
        let mut work: Vec<(String, DeploymentId, Option<u64>, Option<String>)> = Vec::new();
        for c in claims {
            let Ok(running) = DeploymentId::new(c.running.clone()) else {
                continue;
            };
            if c.mine {
                let driving = inner
                    .drivers
                    .lock()
                    .expect("drivers lock")
                    .contains_key(&c.app);
                if !driving {
                    work.push((c.app, running, Some(c.epoch), None));
                }
                continue;
            }
            seen.push(c.app.clone());
            // Free, or its holder is gone: the app's preferred live replica takes it at
            // once; any replica does once it has stayed free for two scans (a preferred
            // replica may be alive but not scanning).
            let since = *free_since.entry(c.app.clone()).or_insert(now);
            let mine = preferred(&c.app, &live) == Some(inner.me.as_str());
            if !mine && now.duration_since(since) < 2 * inner.limits.scan_every {
                continue;
            }
            work.push((c.app, running, None, c.holder));
        }
        // A dead replica's apps are taken and resumed side by side (bounded), so the last
        // of a thousand does not wait for the other 999 one after another.
        let mut tasks = tokio::task::JoinSet::new();
        for (app, running, epoch, holder) in work {
            if tasks.len() >= SCAN_PARALLEL_MAX {
                let _ = tasks.join_next().await;
            }
            let runner = self.clone();
            tasks.spawn(async move {
                match epoch {
                    Some(epoch) => runner.adopt(&app, &running, epoch).await,
                    None => runner.take_and_adopt(&app, &running, holder).await,
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        free_since.retain(|app, _| seen.contains(app));
        self.answer_requests().await;
    }

    /// Take `app`'s lease (its holder is gone or none) and resume its running deployment.
    async fn take_and_adopt(&self, app: &str, running: &DeploymentId, holder: Option<String>) {
        let inner = self.inner();
        match inner.store.take(app, &inner.me).await {
            Ok(Some(epoch)) => {
                metrics::counter!("bluegreen_takeovers_total").increment(1);
                match &holder {
                    Some(h) => {
                        tracing::warn!(%app, from = %h, epoch, deployment = %running, "took over an app whose replica is gone; resuming its deployment")
                    }
                    None => {
                        tracing::info!(%app, epoch, deployment = %running, "took a free app")
                    }
                }
                self.adopt(app, running, epoch).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%app, error = %e, "taking an app's lease failed"),
        }
    }

    /// Claim and apply the operator requests posted for deployments this replica drives.
    async fn answer_requests(&self) {
        let inner = self.inner();
        let pending = match inner.store.pending_requests().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading routed operator requests failed");
                return;
            }
        };
        for p in pending {
            let tx = {
                let drivers = inner.drivers.lock().expect("drivers lock");
                drivers
                    .values()
                    .find(|l| l.id.as_str() == p.deployment)
                    .map(|l| l.tx.clone())
            };
            let Some(tx) = tx else { continue };
            match inner.store.claim_request(&p.id, &inner.me).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming an operator request failed");
                    continue;
                }
            }
            let store = inner.store.clone();
            tokio::spawn(async move {
                let (reply, rx) = oneshot::channel();
                let answer = if tx.send(Control::Signal(p.request, reply)).await.is_ok() {
                    rx.await.ok()
                } else {
                    None
                };
                // A driver that stopped before answering leaves the request unanswered:
                // its poster times out and says so.
                if let Some(answer) = answer
                    && let Err(e) = store.answer_request(&p.id, &answer).await
                {
                    tracing::warn!(error = %e, "writing an operator request's answer failed");
                }
            });
        }
    }

    /// Start a driver for `d` (the app's running deployment, lease held at `epoch`).
    pub(super) fn spawn(&self, app: &str, d: Deployment, seq: u64, first: Input, epoch: u64) {
        let inner = self.inner();
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE_MAX);
        let (stop, stop_rx) = watch::channel(false);
        let id = d.id().clone();
        {
            let mut drivers = inner.drivers.lock().expect("drivers lock");
            if let Some(old) = drivers.get(app) {
                if old.id == id && old.epoch == epoch {
                    return; // already driven here
                }
                let _ = old.stop.send(true);
            }
            drivers.insert(
                app.to_string(),
                Local {
                    id: id.clone(),
                    epoch,
                    tx,
                    stop,
                },
            );
        }
        let alive = inner
            .alive
            .lock()
            .expect("alive lock")
            .clone()
            .unwrap_or_else(|| mpsc::channel(1).0);
        let fence = Fence {
            app: app.to_string(),
            holder: inner.me.clone(),
            epoch,
        };
        let runner = self.clone();
        tracing::info!(%app, %id, epoch, ?first, "driving deployment");
        tokio::spawn(async move {
            let span = tracing::info_span!("deployment", id = %id, app = %fence.app);
            let inner = runner.inner();
            inner.running.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::in_flight(1.0);
            // The driver runs as a task of its own so that a panic in it is caught here
            // and fails this deployment only.
            let task = tokio::spawn(
                driver::run(runner.clone(), d, seq, first, rx, stop_rx, fence.clone())
                    .instrument(span.clone()),
            );
            let end = match task.await {
                Ok(end) => end,
                Err(e) if e.is_panic() => {
                    let message = driver::panic_message(e.into_panic());
                    driver::contain_panic(&runner, &fence, &id, message)
                        .instrument(span)
                        .await
                }
                Err(_) => End::Detached,
            };
            inner.running.fetch_sub(1, Ordering::Relaxed);
            crate::telemetry::in_flight(-1.0);
            match end {
                End::Finished(outcome) => runner.on_finished(&fence.app, &id, outcome, epoch).await,
                End::Detached | End::Fenced => runner.forget(&fence.app, &id, epoch),
            }
            drop(alive);
        });
    }

    /// Forget a driver that stopped (if the app's entry is still that driver's).
    fn forget(&self, app: &str, id: &DeploymentId, epoch: u64) {
        let mut drivers = self.inner().drivers.lock().expect("drivers lock");
        if drivers
            .get(app)
            .is_some_and(|l| &l.id == id && l.epoch == epoch)
        {
            drivers.remove(app);
        }
    }

    /// A deployment this replica drove finished: free its app through the admission
    /// value (fenced), then drive what starts next.
    pub(super) async fn on_finished(
        &self,
        app: &str,
        id: &DeploymentId,
        outcome: PhaseName,
        epoch: u64,
    ) {
        let inner = self.inner();
        let fence = Fence {
            app: app.to_string(),
            holder: inner.me.clone(),
            epoch,
        };
        let started = Instant::now();
        let mut delay = FINISH_DELAY_FIRST;
        // Bounded by `store_retry_max`; if the store stays down, the app stays marked as
        // running this deployment and the next scan (once the store answers) frees it.
        let next = loop {
            match inner
                .store
                .finish(&fence, id, outcome, SystemClock.now())
                .await
            {
                Ok(next) => break Some(next),
                Err(StoreError::Fenced { .. }) => break None,
                Err(e)
                    if started.elapsed() < inner.limits.store_retry_max && !self.is_stopping() =>
                {
                    tracing::warn!(%app, %id, error = %e, "freeing the app failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(FINISH_DELAY_MAX);
                }
                Err(e) => {
                    tracing::error!(%app, %id, error = %e, "freeing the app failed; the next scan frees it");
                    break None;
                }
            }
        };
        match next {
            Some(Next::Start { id: next }) => {
                tracing::info!(%app, id = %next, "starting queued deployment");
                self.adopt(app, &next, epoch).await;
            }
            Some(Next::Held { hold, queued }) => {
                tracing::error!(%app, by = %hold.by, queued = ?queued.as_ref().map(|q| q.to_string()), "the app is held after a failed deployment: nothing more starts until an operator releases it (bluegreen release --app {app})");
                self.forget(app, id, epoch);
            }
            Some(Next::Idle | Next::Unchanged) | None => self.forget(app, id, epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_prefer_one_live_replica_each_and_spread() {
        let live: Vec<String> = (0..3).map(|i| format!("replica-{i}")).collect();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for n in 0..300 {
            let app = format!("app-{n}");
            let p = preferred(&app, &live).unwrap();
            assert_eq!(preferred(&app, &live), Some(p), "stable");
            *per.entry(p).or_default() += 1;
        }
        assert_eq!(per.len(), 3);
        assert!(per.values().all(|&n| n > 60), "{per:?}");
        // One replica gone: only its apps move.
        let fewer = &live[..2];
        for n in 0..300 {
            let app = format!("app-{n}");
            let before = preferred(&app, &live).unwrap();
            if before != live[2] {
                assert_eq!(preferred(&app, fewer), Some(before));
            }
        }
    }
}
