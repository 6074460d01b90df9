//! Admission: one app's queue rules as a pure value.
//!
//! Which deployment of an app runs, which one waits, what a new request does to them, and
//! what follows when a deployment ends. The service keeps one [`Admission`] per app in its
//! store (applied inside one database transaction on the app's row, so two replicas never
//! admit two running deployments) and the simulator's harness keeps one per simulated app —
//! the same rules in production and in every simulated seed.
//!
//! The rules (DESIGN §4 invariant 5, §5 "Webhook rules"):
//! - **One running, one queued.** A request for an app with nothing running starts at once;
//!   otherwise it waits, and a newer request replaces the waiting one (which is superseded
//!   and never touched AWS).
//! - **Idempotent.** The image already running or queued for the app answers with that
//!   deployment; a push of an image the app deployed before (a repeat delivery) too.
//! - **API**: a request while one runs is a conflict unless it asks to supersede: then it
//!   queues and the running deployment is asked to abort.
//! - **Pushes are ordered** by the event's own time: a push older than the newest push
//!   already accepted for the app is stale and ignored (EventBridge retries for hours).
//! - **A `Failed` outcome holds the app.** `Failed` means rollback itself could not finish:
//!   the world is unknown, so nothing more is started — not the queued deployment, not a
//!   push — until an operator looked and released the app ([`Admission::release`]).
//!
//! No clock, no I/O: time comes in as event times, ids are made by the caller (from
//! [`Admission::next_ordinal`]).

use serde::{Deserialize, Serialize};

use crate::ids::DeploymentId;
use crate::io::PhaseName;
use crate::time::Timestamp;

/// A deployment the app's queue holds, with the key that makes submissions idempotent
/// (the image digest, or the whole reference without one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<I = DeploymentId> {
    pub id: I,
    pub image_key: String,
}

/// Why the app takes no new deployment until an operator releases it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold<I = DeploymentId> {
    /// The deployment whose outcome held the app.
    pub by: I,
    pub reason: String,
}

/// Where a request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// An operator or a pipeline through the API: explicit, so a conflict is reported.
    Api { supersede: bool },
    /// An image push (webhook): queues behind a running one; ordered by its event time.
    Push { event_time: Option<Timestamp> },
}

/// A request to deploy an image to the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission<I = DeploymentId> {
    /// The id the new deployment gets if one is made (see [`Admission::next_ordinal`]).
    pub id: I,
    pub image_key: String,
    pub source: Source,
    /// The app's most recent deployment of the same image key in any state, when the
    /// caller's store has one (a push of it is a repeat delivery).
    pub prior: Option<I>,
}

/// Why a request changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ignored<I = DeploymentId> {
    /// A push older than the newest push accepted for the app.
    Stale {
        event_time: Timestamp,
        newest: Timestamp,
    },
    /// The app is held after a failed deployment.
    Held { hold: Hold<I> },
}

impl<I: std::fmt::Display> std::fmt::Display for Ignored<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::Stale { event_time, newest } => write!(
                f,
                "stale: the push's event time {event_time} is older than the newest push accepted for the app ({newest})"
            ),
            Ignored::Held { hold } => write!(
                f,
                "held: deployment {} failed ({}); the app takes no deployment until an operator releases it",
                hold.by, hold.reason
            ),
        }
    }
}

impl<I> Ignored<I> {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Ignored::Stale { .. } => "stale",
            Ignored::Held { .. } => "held",
        }
    }
}

/// What a submission does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<I = DeploymentId> {
    /// Nothing runs for the app: the new deployment starts now.
    Start { id: I },
    /// The new deployment waits behind the running one. `superseded`: the queued one it
    /// replaced (it never touched AWS). `abort`: the running one to ask to abort (an API
    /// request that supersedes).
    Queue {
        id: I,
        superseded: Option<I>,
        abort: Option<I>,
    },
    /// The same image is running, queued, or (for a push) was deployed before.
    Existing { id: I },
    /// An API request while `running` runs, without `supersede`.
    Conflict { running: I },
    /// Nothing changed, for this reason.
    Ignored(Ignored<I>),
}

impl<I> Decision<I> {
    /// Did the submission make a new deployment?
    pub fn created(&self) -> Option<&I> {
        match self {
            Decision::Start { id } | Decision::Queue { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// What follows an event that frees the app (a deployment finished, a release).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<I = DeploymentId> {
    /// Start this (formerly queued) deployment now.
    Start { id: I },
    /// Nothing runs and nothing waits.
    Idle,
    /// The app is held; `queued` stays queued until a release.
    Held { hold: Hold<I>, queued: Option<I> },
    /// The event did not concern the running deployment (a late or repeated report).
    Unchanged,
}

/// What a cancel did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancel<I = DeploymentId> {
    /// It was queued: it is cancelled and never touches AWS.
    Cancelled { id: I },
    /// It runs: the caller asks its driver to abort instead.
    Running { id: I },
    /// The app's queue does not hold it.
    Unknown,
}

/// One app's admission state: serialisable, stored with the app.
/// `I` names a deployment: a [`DeploymentId`] in the service, a push's index in the
/// simulator (whose deployment ids are made when they start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission<I = DeploymentId> {
    running: Option<Entry<I>>,
    queued: Option<Entry<I>>,
    /// Event time of the newest push accepted (ordering of pushes).
    newest_push: Option<Timestamp>,
    hold: Option<Hold<I>>,
    /// Deployments admitted so far (names the next one).
    admitted: u64,
}

impl<I> Default for Admission<I> {
    fn default() -> Self {
        Admission {
            running: None,
            queued: None,
            newest_push: None,
            hold: None,
            admitted: 0,
        }
    }
}

impl<I: Clone + PartialEq> Admission<I> {
    /// An app's state rebuilt from what a store holds (a store written before admission
    /// was kept as a value): the running deployment, the queued one, deployments so far.
    pub fn recovered(running: Option<Entry<I>>, queued: Option<Entry<I>>, admitted: u64) -> Self {
        Admission {
            running,
            queued,
            newest_push: None,
            hold: None,
            admitted,
        }
    }

    pub fn running(&self) -> Option<&Entry<I>> {
        self.running.as_ref()
    }

    pub fn queued(&self) -> Option<&Entry<I>> {
        self.queued.as_ref()
    }

    pub fn hold(&self) -> Option<&Hold<I>> {
        self.hold.as_ref()
    }

    pub fn newest_push(&self) -> Option<Timestamp> {
        self.newest_push
    }

    /// Running or queued: the app has work.
    pub fn is_busy(&self) -> bool {
        self.running.is_some() || self.queued.is_some()
    }

    /// The ordinal the next admitted deployment gets (1 for the first).
    pub fn next_ordinal(&self) -> u64 {
        self.admitted + 1
    }

    /// Apply a submission.
    pub fn submit(&mut self, s: Submission<I>) -> Decision<I> {
        let same = |e: &Option<Entry<I>>| {
            e.as_ref()
                .filter(|e| e.image_key == s.image_key)
                .map(|e| e.id.clone())
        };
        if let Some(id) = same(&self.running).or_else(|| same(&self.queued)) {
            return Decision::Existing { id };
        }
        if let Source::Push { event_time } = s.source {
            // A repeat delivery answers with what it made the first time, even when late.
            if let Some(id) = s.prior {
                return Decision::Existing { id };
            }
            if let (Some(t), Some(newest)) = (event_time, self.newest_push)
                && t < newest
            {
                return Decision::Ignored(Ignored::Stale {
                    event_time: t,
                    newest,
                });
            }
        }
        if let Some(hold) = &self.hold {
            return Decision::Ignored(Ignored::Held { hold: hold.clone() });
        }
        let abort = match (&self.running, s.source) {
            (Some(r), Source::Api { supersede: false }) => {
                return Decision::Conflict {
                    running: r.id.clone(),
                };
            }
            (Some(r), Source::Api { supersede: true }) => Some(r.id.clone()),
            _ => None,
        };
        if let Source::Push {
            event_time: Some(t),
        } = s.source
        {
            self.newest_push = Some(self.newest_push.map_or(t, |n| n.max(t)));
        }
        self.admitted += 1;
        let entry = Entry {
            id: s.id.clone(),
            image_key: s.image_key,
        };
        if self.running.is_none() {
            debug_assert!(
                self.queued.is_none(),
                "a queued deployment with none running"
            );
            self.running = Some(entry);
            return Decision::Start { id: s.id };
        }
        let superseded = self.queued.replace(entry).map(|e| e.id);
        Decision::Queue {
            id: s.id,
            superseded,
            abort,
        }
    }

    /// A deployment reached a terminal phase.
    pub fn finished(&mut self, id: &I, outcome: PhaseName) -> Next<I> {
        if self.running.as_ref().is_none_or(|r| &r.id != id) {
            return Next::Unchanged;
        }
        self.running = None;
        if outcome == PhaseName::Failed {
            self.hold = Some(Hold {
                by: id.clone(),
                reason: "rollback could not finish: the environments need an operator's look"
                    .into(),
            });
        }
        self.start_next()
    }

    /// An operator released a held app: the queued deployment (if any) starts.
    pub fn release(&mut self) -> Next<I> {
        if self.hold.take().is_none() {
            return Next::Unchanged;
        }
        if self.running.is_some() {
            return Next::Unchanged;
        }
        self.start_next()
    }

    fn start_next(&mut self) -> Next<I> {
        if let Some(hold) = &self.hold {
            return Next::Held {
                hold: hold.clone(),
                queued: self.queued.as_ref().map(|q| q.id.clone()),
            };
        }
        match self.queued.take() {
            Some(q) => {
                let id = q.id.clone();
                self.running = Some(q);
                Next::Start { id }
            }
            None => Next::Idle,
        }
    }

    /// Cancel a deployment: a queued one is dropped; a running one must be aborted.
    pub fn cancel(&mut self, id: &I) -> Cancel<I> {
        if self.queued.as_ref().is_some_and(|q| &q.id == id) {
            self.queued = None;
            return Cancel::Cancelled { id: id.clone() };
        }
        if self.running.as_ref().is_some_and(|r| &r.id == id) {
            return Cancel::Running { id: id.clone() };
        }
        Cancel::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_request_says_why_in_words() {
        let stale: Ignored = Ignored::Stale {
            event_time: Timestamp::from_millis(1_000),
            newest: Timestamp::from_millis(2_000),
        };
        let text = stale.to_string();
        assert!(text.starts_with("stale: the push's event time "), "{text}");
        assert!(
            text.contains("older than the newest push accepted"),
            "{text}"
        );
        let held: Ignored = Ignored::Held {
            hold: Hold {
                by: id(7),
                reason: "rollback could not finish".into(),
            },
        };
        assert_eq!(
            held.to_string(),
            "held: deployment web-7 failed (rollback could not finish); the app takes no \
             deployment until an operator releases it"
        );
        assert_eq!((stale.label(), held.label()), ("stale", "held"));
    }

    fn id(n: u64) -> DeploymentId {
        DeploymentId::new(format!("web-{n}")).unwrap()
    }

    fn push(a: &Admission, key: &str, t: u64) -> Submission {
        Submission {
            id: id(a.next_ordinal()),
            image_key: key.into(),
            source: Source::Push {
                event_time: Some(Timestamp::from_millis(t)),
            },
            prior: None,
        }
    }

    fn api(a: &Admission, key: &str, supersede: bool) -> Submission {
        Submission {
            id: id(a.next_ordinal()),
            image_key: key.into(),
            source: Source::Api { supersede },
            prior: None,
        }
    }

    #[test]
    fn the_accessors_report_what_the_queue_holds() {
        let mut a = Admission::default();
        assert!(!a.is_busy(), "an empty app has no work");
        assert_eq!((a.hold(), a.newest_push()), (None, None));
        let started = a.submit(push(&a, "d1", 10));
        assert_eq!(started.created(), Some(&id(1)), "a start made a deployment");
        assert!(a.is_busy(), "running alone is busy");
        assert_eq!(a.newest_push(), Some(Timestamp::from_millis(10)));
        let queued = a.submit(push(&a, "d2", 30));
        assert_eq!(queued.created(), Some(&id(2)), "a queued one was made too");
        assert_eq!(a.newest_push(), Some(Timestamp::from_millis(30)));
        let again = a.submit(push(&a, "d2", 40));
        assert_eq!(again, Decision::Existing { id: id(2) });
        assert_eq!(again.created(), None, "an idempotent answer made nothing");
        assert_eq!(
            a.finished(&id(1), PhaseName::Failed),
            Next::Held {
                hold: a.hold().cloned().expect("a failed outcome holds the app"),
                queued: Some(id(2)),
            }
        );
        assert_eq!(a.hold().map(|h| &h.by), Some(&id(1)));

        let entry = |n: u64, key: &str| Entry {
            id: id(n),
            image_key: key.into(),
        };
        let r = Admission::recovered(None, Some(entry(4, "q")), 4);
        assert!(r.is_busy(), "queued alone is busy");
        assert_eq!(r.queued(), Some(&entry(4, "q")));
        assert_eq!(r.running(), None);
        assert_eq!(
            r.next_ordinal(),
            5,
            "the count of admitted deployments survives"
        );
        let r = Admission::recovered(Some(entry(2, "r")), None, 2);
        assert_eq!(r.running(), Some(&entry(2, "r")));
        assert!(r.is_busy());
    }

    #[test]
    fn first_request_starts_and_the_next_queues() {
        let mut a = Admission::default();
        assert_eq!(a.submit(push(&a, "d1", 10)), Decision::Start { id: id(1) });
        assert_eq!(
            a.submit(push(&a, "d2", 20)),
            Decision::Queue {
                id: id(2),
                superseded: None,
                abort: None
            }
        );
        assert!(a.is_busy());
        assert_eq!(a.next_ordinal(), 3);
    }

    #[test]
    fn a_newer_push_supersedes_the_queued_one_not_the_running_one() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 10));
        a.submit(push(&a, "d2", 20));
        assert_eq!(
            a.submit(push(&a, "d3", 30)),
            Decision::Queue {
                id: id(3),
                superseded: Some(id(2)),
                abort: None
            }
        );
        assert_eq!(a.running().unwrap().id, id(1));
        assert_eq!(a.queued().unwrap().id, id(3));
    }

    #[test]
    fn the_same_image_running_or_queued_answers_with_that_deployment() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 10));
        a.submit(push(&a, "d2", 20));
        assert_eq!(
            a.submit(api(&a, "d1", true)),
            Decision::Existing { id: id(1) }
        );
        assert_eq!(
            a.submit(push(&a, "d2", 25)),
            Decision::Existing { id: id(2) }
        );
        assert_eq!(a.next_ordinal(), 3, "nothing new was admitted");
    }

    #[test]
    fn a_repeat_delivery_of_a_push_answers_with_its_first_deployment_even_when_late() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 10));
        a.finished(&id(1), PhaseName::Completed);
        a.submit(push(&a, "d2", 20));
        let mut late = push(&a, "d1", 10);
        late.prior = Some(id(1));
        assert_eq!(a.submit(late), Decision::Existing { id: id(1) });
    }

    #[test]
    fn a_push_older_than_the_newest_accepted_is_stale_and_changes_nothing() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 100));
        a.submit(push(&a, "d2", 300));
        let before = a.clone();
        assert_eq!(
            a.submit(push(&a, "d0", 200)),
            Decision::Ignored(Ignored::Stale {
                event_time: Timestamp::from_millis(200),
                newest: Timestamp::from_millis(300)
            })
        );
        assert_eq!(a, before, "a stale push neither queues nor supersedes");
        // The same event time as the newest is not older: two pushes in one second.
        assert!(matches!(
            a.submit(push(&a, "d3", 300)),
            Decision::Queue { .. }
        ));
    }

    #[test]
    fn ordering_survives_the_app_going_idle() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 500));
        assert_eq!(a.finished(&id(1), PhaseName::Completed), Next::Idle);
        assert!(matches!(
            a.submit(push(&a, "d0", 400)),
            Decision::Ignored(Ignored::Stale { .. })
        ));
    }

    #[test]
    fn api_requests_are_not_ordered_by_push_time() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 500));
        a.finished(&id(1), PhaseName::Completed);
        assert_eq!(
            a.submit(api(&a, "d0", false)),
            Decision::Start { id: id(2) }
        );
    }

    #[test]
    fn an_api_request_while_one_runs_conflicts_unless_it_supersedes() {
        let mut a = Admission::default();
        a.submit(api(&a, "d1", false));
        assert_eq!(
            a.submit(api(&a, "d2", false)),
            Decision::Conflict { running: id(1) }
        );
        assert_eq!(
            a.submit(api(&a, "d2", true)),
            Decision::Queue {
                id: id(2),
                superseded: None,
                abort: Some(id(1))
            }
        );
    }

    #[test]
    fn a_finished_deployment_starts_the_queued_one() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.submit(push(&a, "d2", 2));
        assert_eq!(
            a.finished(&id(1), PhaseName::RolledBack),
            Next::Start { id: id(2) }
        );
        assert_eq!(a.running().unwrap().id, id(2));
        assert!(a.queued().is_none());
        assert_eq!(a.finished(&id(2), PhaseName::Completed), Next::Idle);
        assert!(!a.is_busy());
    }

    #[test]
    fn a_rejected_deployment_frees_the_app_like_any_other_outcome() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.submit(push(&a, "d2", 2));
        assert_eq!(
            a.finished(&id(1), PhaseName::Rejected),
            Next::Start { id: id(2) }
        );
    }

    #[test]
    fn a_failed_deployment_holds_the_app_until_released() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.submit(push(&a, "d2", 2));
        let next = a.finished(&id(1), PhaseName::Failed);
        let Next::Held { hold, queued } = next else {
            panic!("expected the app held, got {next:?}");
        };
        assert_eq!(hold.by, id(1));
        assert_eq!(
            queued,
            Some(id(2)),
            "the queued deployment waits, not dropped"
        );
        assert!(a.running().is_none());
        // Neither a push nor an API request starts anything while held.
        assert!(matches!(
            a.submit(push(&a, "d3", 3)),
            Decision::Ignored(Ignored::Held { .. })
        ));
        assert!(matches!(
            a.submit(api(&a, "d4", true)),
            Decision::Ignored(Ignored::Held { .. })
        ));
        assert_eq!(a.release(), Next::Start { id: id(2) });
        assert!(a.hold().is_none());
        assert_eq!(a.release(), Next::Unchanged, "a second release is harmless");
    }

    #[test]
    fn releasing_a_held_app_with_nothing_queued_leaves_it_idle() {
        let mut a = Admission::default();
        a.submit(api(&a, "d1", false));
        a.finished(&id(1), PhaseName::Failed);
        assert_eq!(a.release(), Next::Idle);
        assert_eq!(
            a.submit(api(&a, "d2", false)),
            Decision::Start { id: id(2) }
        );
    }

    #[test]
    fn a_late_or_repeated_finish_report_changes_nothing() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.finished(&id(1), PhaseName::Completed);
        a.submit(push(&a, "d2", 2));
        assert_eq!(a.finished(&id(1), PhaseName::Failed), Next::Unchanged);
        assert!(a.hold().is_none());
        assert_eq!(a.running().unwrap().id, id(2));
    }

    #[test]
    fn cancel_drops_a_queued_deployment_and_points_at_a_running_one() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.submit(push(&a, "d2", 2));
        assert_eq!(a.cancel(&id(2)), Cancel::Cancelled { id: id(2) });
        assert_eq!(a.cancel(&id(2)), Cancel::Unknown);
        assert_eq!(a.cancel(&id(1)), Cancel::Running { id: id(1) });
        assert_eq!(a.finished(&id(1), PhaseName::Completed), Next::Idle);
    }

    #[test]
    fn the_state_round_trips_through_serde() {
        let mut a = Admission::default();
        a.submit(push(&a, "d1", 1));
        a.submit(push(&a, "d2", 2));
        a.finished(&id(1), PhaseName::Failed);
        let json = serde_json::to_string(&a).unwrap();
        let back: Admission = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
