//! Notifications: `[[notify]]` entries post deployment events to Slack (incoming-webhook
//! format) or to any HTTP endpoint (JSON, signed like hooks).
//!
//! Events: `started`, `awaiting-approval`, `traffic-shifted` (with the percent on green),
//! `rolled-back` (with the reason), `completed`, `failed` — read after each persisted
//! turn of a deployment ([`Notifier::after_turn`]), so an event is only sent for a state
//! that is on disk.
//!
//! Delivery never blocks or fails a deployment: the driver only `try_send`s into one
//! bounded queue per entry ([`QUEUE_MAX`]; a full queue drops the event and counts it),
//! and one task per entry posts in order with a per-attempt timeout and bounded retries
//! with backoff. Everything is counted in `/metrics`
//! (`bluegreen_notifications_total{kind, result = delivered | failed | dropped}`,
//! `bluegreen_notification_retries_total{kind}`). Delivery is at least once: a restart
//! may repeat `started` for a deployment that had not left preflight.

mod config;
mod deliver;

use std::collections::HashMap;
use std::sync::Mutex;

use bluegreen_core::{Deployment, PhaseName, Timestamp, Transition};
use serde::Serialize;
use tokio::sync::mpsc;

pub use config::{EventKind, NotifyConfig, NotifyKind};
pub use deliver::{ATTEMPT_TIMEOUT, ATTEMPTS_MAX, DELIVERY_HEADER, SIGNATURE_HEADER, signature};

/// Events waiting per entry before new ones are dropped.
pub const QUEUE_MAX: usize = 256;
/// Deployments remembered between turns (entries leave when a deployment ends).
const TRACKED_MAX: usize = 100_000;

pub const NOTIFICATIONS_TOTAL: &str = "bluegreen_notifications_total";
pub const NOTIFICATION_RETRIES_TOTAL: &str = "bluegreen_notification_retries_total";

/// One deployment event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event: EventKind,
    pub app: String,
    pub deployment: String,
    pub image: String,
    /// traffic-shifted: green's production percentage now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// rolled-back, failed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: Timestamp,
    /// The event's number within its deployment (with the id: the delivery id).
    pub seq: u32,
}

impl Event {
    /// One line for people (Slack's `text`).
    pub fn text(&self) -> String {
        let who = format!("*{}* `{}`", self.app, self.deployment);
        match self.event {
            EventKind::Started => format!(":arrow_forward: {who} started: {}", self.image),
            EventKind::AwaitingApproval => format!(
                ":raised_hand: {who} is waiting for approval (`bluegreen promote {}`)",
                self.deployment
            ),
            EventKind::TrafficShifted => format!(
                ":twisted_rightwards_arrows: {who}: green now takes {} % of production traffic",
                self.percent.unwrap_or(0)
            ),
            EventKind::RolledBack => format!(
                ":rewind: {who} rolled back: {}",
                self.reason.as_deref().unwrap_or("no reason recorded")
            ),
            EventKind::Completed => format!(":white_check_mark: {who} completed: {}", self.image),
            EventKind::Failed => format!(
                ":x: {who} failed: {}",
                self.reason.as_deref().unwrap_or("no reason recorded")
            ),
        }
    }
}

/// One event as [`diff`] finds it: kind, percent, reason, time (0: the turn's time).
pub type Found = (EventKind, Option<u8>, Option<String>, Timestamp);

/// What was already reported for one deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub transitions: usize,
    pub green: u8,
    pub events: u32,
}

/// The events between `prev` and now. `prev` is `None` the first time a deployment is
/// seen by this process: with no transitions yet it has just started; with some, it was
/// resumed after a restart and only what happens from now on is reported.
pub fn diff(
    prev: Option<Seen>,
    history: &[Transition],
    green: u8,
    outcome_reason: Option<String>,
) -> (Vec<Found>, Seen) {
    let mut out = Vec::new();
    let now_seen = |events| Seen {
        transitions: history.len(),
        green,
        events,
    };
    let Some(prev) = prev else {
        if history.is_empty() {
            return (
                vec![(EventKind::Started, None, None, Timestamp::default())],
                now_seen(1),
            );
        }
        return (out, now_seen(0));
    };
    let fresh = history.get(prev.transitions..).unwrap_or(&[]);
    let mut last = Vec::new();
    for t in fresh {
        match t.to {
            PhaseName::Approval => out.push((EventKind::AwaitingApproval, None, None, t.at)),
            PhaseName::Completed => last.push((EventKind::Completed, None, None, t.at)),
            PhaseName::RolledBack => last.push((
                EventKind::RolledBack,
                None,
                Some(outcome_reason.clone().unwrap_or_else(|| t.reason.clone())),
                t.at,
            )),
            PhaseName::Failed | PhaseName::Rejected => last.push((
                EventKind::Failed,
                None,
                Some(outcome_reason.clone().unwrap_or_else(|| t.reason.clone())),
                t.at,
            )),
            _ => {}
        }
    }
    if green != prev.green {
        // Stamped with the turn's time by the caller (a shift is not a transition).
        out.push((
            EventKind::TrafficShifted,
            Some(green),
            None,
            Timestamp::default(),
        ));
    }
    out.extend(last);
    let events = prev.events + out.len() as u32;
    (out, now_seen(events))
}

/// One `[[notify]]` entry with its URL resolved.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: NotifyKind,
    pub url: String,
    pub apps: Vec<String>,
    pub events: Vec<EventKind>,
}

impl Target {
    fn wants(&self, e: &Event) -> bool {
        (self.apps.is_empty() || self.apps.contains(&e.app))
            && (self.events.is_empty() || self.events.contains(&e.event))
    }
}

/// What a target's queue carries: an event, or a flush marker answered once every event
/// before it is done with.
pub(crate) enum Queued {
    Event(Event),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The notifier: per-entry queues and what each deployment already reported.
pub struct Notifier {
    targets: Vec<(Target, mpsc::Sender<Queued>)>,
    seen: Mutex<HashMap<String, Seen>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start one delivery task per target (on the current tokio runtime). `secret` signs
    /// `webhook` deliveries (BLUEGREEN_HOOK_SECRET).
    pub fn start(targets: Vec<Target>, secret: Option<Vec<u8>>) -> Notifier {
        let client = deliver::client();
        let targets = targets
            .into_iter()
            .map(|t| {
                let (tx, rx) = mpsc::channel(QUEUE_MAX);
                tokio::spawn(deliver::run(t.clone(), client.clone(), secret.clone(), rx));
                (t, tx)
            })
            .collect();
        Notifier {
            targets,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Resolve `[[notify]]` entries: each URL from the environment variable the entry
    /// names (`lookup`), and a secret for `webhook` entries.
    pub fn targets(
        entries: &[NotifyConfig],
        lookup: impl Fn(&str) -> Option<String>,
        secret: Option<&[u8]>,
    ) -> Result<Vec<Target>, String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let url = lookup(&e.url_env).filter(|u| !u.is_empty()).ok_or_else(|| {
                    format!(
                        "notify[{i}].url_env: the environment variable {} is not set (it holds the {} URL)",
                        e.url_env,
                        e.kind.as_str()
                    )
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!(
                        "notify[{i}].url_env: {} must hold an http(s) URL",
                        e.url_env
                    ));
                }
                if e.kind == NotifyKind::Webhook && secret.is_none() {
                    return Err(format!(
                        "notify[{i}]: webhook notifications are signed: set BLUEGREEN_HOOK_SECRET"
                    ));
                }
                Ok(Target {
                    kind: e.kind,
                    url,
                    apps: e.apps.clone(),
                    events: e.events.clone(),
                })
            })
            .collect()
    }

    /// Wait, at most `within`, until every notification queued so far was delivered or
    /// given up: a short-lived process (`deploy --local`, a server shutting down) calls it
    /// before it exits so the last event (completed, rolled back) is not lost. Returns
    /// whether every queue drained in time.
    pub async fn flush(&self, within: std::time::Duration) -> bool {
        let mut waits = Vec::with_capacity(self.targets.len());
        for (_, tx) in &self.targets {
            let (done, wait) = tokio::sync::oneshot::channel();
            // `send` waits for room in a full queue; the deadline below bounds it.
            waits.push(
                async move { tx.send(Queued::Flush(done)).await.is_ok() && wait.await.is_ok() },
            );
        }
        let all = async {
            let mut ok = true;
            for w in waits {
                ok &= w.await;
            }
            ok
        };
        tokio::time::timeout(within, all).await.unwrap_or(false)
    }

    /// Called by the driver after each persisted turn: queue what changed. Never waits.
    pub fn after_turn(&self, d: &Deployment) {
        if self.targets.is_empty() {
            return;
        }
        let id = d.id().as_str().to_string();
        let status = d.status();
        let reason = d.outcome_reason().map(|r| r.to_string());
        let (events, prev_events) = {
            let mut seen = self.seen.lock().expect("notify lock");
            let prev = seen.get(&id).copied();
            let (events, next) = diff(prev, d.history(), status.weights.green, reason);
            if d.is_terminal() {
                seen.remove(&id);
            } else {
                if seen.len() >= TRACKED_MAX {
                    // Bounded: forgetting only risks a repeated `started`.
                    seen.clear();
                }
                seen.insert(id.clone(), next);
            }
            (events, prev.map(|p| p.events).unwrap_or(0))
        };
        let image = match &d.spec().artifact {
            bluegreen_core::Artifact::Image(i) | bluegreen_core::Artifact::TaskDefinition(i) => {
                i.clone()
            }
        };
        for (n, (event, percent, reason, at)) in events.into_iter().enumerate() {
            let e = Event {
                event,
                app: d.spec().app.to_string(),
                deployment: id.clone(),
                image: image.to_string(),
                percent,
                reason,
                at: if at == Timestamp::default() {
                    d.updated_at()
                } else {
                    at
                },
                seq: prev_events + n as u32 + 1,
            };
            for (target, tx) in &self.targets {
                if target.wants(&e) && tx.try_send(Queued::Event(e.clone())).is_err() {
                    tracing::warn!(event = e.event.as_str(), deployment = %e.deployment, "notification queue full: dropped");
                    metrics::counter!(NOTIFICATIONS_TOTAL, "kind" => target.kind.as_str(), "result" => "dropped").increment(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

impl<C: bluegreen_core::Cloud + 'static> crate::runner::Runner<C> {
    /// Report every turn of this runner's deployments to `notifier` (set once).
    pub fn set_notifier(&self, notifier: Notifier) {
        if self.inner().notify.set(notifier).is_err() {
            tracing::warn!("a notifier was already set; keeping the first");
        }
    }

    /// Before the process exits: wait (at most [`FLUSH_MAX`]) for queued notifications.
    pub async fn flush_notifications(&self) {
        if let Some(n) = self.inner().notify.get()
            && !n.flush(FLUSH_MAX).await
        {
            tracing::warn!(
                "notifications still queued after {FLUSH_MAX:?} were not delivered before exit"
            );
        }
    }
}

/// How long an exiting process waits for its notifications: a delivery's whole retry
/// budget (4 attempts of at most 5 s, with backoff) fits, and a receiver that is down
/// cannot hold the exit longer.
pub const FLUSH_MAX: std::time::Duration = std::time::Duration::from_secs(30);
