//! The controller lease: one runner drives a store at a time. Taken at start (waiting up
//! to `lease_wait` for a live holder), renewed every third of its TTL, released on a
//! clean stop; a holder on this host whose process is gone is taken over at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bluegreen_core::Cloud;

use super::{Limits, Runner, StartError, SystemClock};
use crate::runner::Clock;
use crate::store::Store;

pub(super) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// Is the lease holder a process of this host that is gone (or this very process: one
/// runner per store per process, so an earlier runner of ours has stopped)?
fn holder_gone(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if host != host_name() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    pid == std::process::id()
        || (cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

pub(super) async fn take_lease(
    store: &Store,
    owner: &str,
    limits: &Limits,
) -> Result<(), StartError> {
    let ttl_ms = u64::try_from(limits.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let started = std::time::Instant::now();
    let mut announced = false;
    // Bounded by lease_wait.
    loop {
        // Lease times are wall-clock, never a demo's faster clock: other processes
        // compare them with their own wall clocks.
        let now = SystemClock.now();
        match store
            .acquire_lease(owner, now, now.plus_ms(ttl_ms), holder_gone)
            .await?
        {
            None => return Ok(()),
            Some((holder, until)) => {
                if started.elapsed() >= limits.lease_wait {
                    return Err(StartError::Busy { holder, until });
                }
                if !announced {
                    tracing::warn!(%holder, %until, "another controller holds this store's lease; waiting for it to expire");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Renew the lease every third of its TTL; a runner that loses it stops driving (so two
/// controllers never drive one store).
pub(super) async fn heartbeat<C: Cloud + 'static>(runner: Runner<C>) {
    let inner = &runner.inner;
    let ttl_ms = u64::try_from(inner.limits.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let every = inner.limits.lease_ttl / 3;
    let mut shutdown = inner.shutdown.subscribe();
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let until = SystemClock.now().plus_ms(ttl_ms);
        match inner.store.renew_lease(&inner.owner, until).await {
            Ok(true) => failures = 0,
            Ok(false) => {
                tracing::error!(
                    "the controller lease was taken by another runner; this one stops driving"
                );
                break;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "renewing the controller lease failed");
                // Two misses still leave a third of the TTL before anyone may take over.
                if failures >= 2 {
                    tracing::error!(
                        "the controller lease could not be renewed; this runner stops driving"
                    );
                    break;
                }
            }
        }
    }
    inner.stopping.store(true, Ordering::SeqCst);
    let _ = inner.shutdown.send(true);
}
