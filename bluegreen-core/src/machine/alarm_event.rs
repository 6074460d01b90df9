//! Alarm events: CloudWatch's own announcement that an alarm changed state, delivered by
//! EventBridge. Polling reads alarms once per poll interval; an event lets an `ALARM`
//! start the rollback the moment it arrives. Polling stays as the fallback for an event
//! that is late or lost, so ignoring a doubtful event never loses a rollback.

use core::fmt;

use super::Deployment;
use super::phase::Phase;
use crate::command::AlarmState;
use crate::io::{AlarmEvent, Notice, Reason, ReasonKind};
use crate::time::Timestamp;

/// What an alarm event does to a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmVerdict {
    /// The rollback starts now.
    RollsBack,
    Ignored(IgnoredAlarm),
}

/// Why an alarm event changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoredAlarm {
    /// The deployment does not list this alarm.
    NotWatched,
    /// Only `ALARM` rolls back; `OK` and `INSUFFICIENT_DATA` change nothing.
    NotAlarm(AlarmState),
    /// The deployment is over.
    Over,
    /// A rollback is already under way (a repeat of the event, or another signal).
    AlreadyRollingBack,
    /// The phase watches no alarms: green has no traffic of any kind yet (its alarms
    /// measure production, which is all blue's), or blue is being removed and it is too
    /// late to go back.
    PhaseDoesNotWatch(crate::io::PhaseName),
    /// The event is older than the deployment.
    BeforeDeployment { created_at: Timestamp },
    /// The machine read the alarm itself after the event's time and it was not in ALARM:
    /// a late redelivery of a state that has passed.
    Stale { read_at: Timestamp },
}

impl fmt::Display for IgnoredAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoredAlarm::NotWatched => write!(f, "the deployment does not watch this alarm"),
            IgnoredAlarm::NotAlarm(s) => write!(f, "state {s:?} is not ALARM"),
            IgnoredAlarm::Over => write!(f, "the deployment is over"),
            IgnoredAlarm::AlreadyRollingBack => write!(f, "already rolling back"),
            IgnoredAlarm::PhaseDoesNotWatch(p) => {
                write!(f, "phase {p} does not watch alarms")
            }
            IgnoredAlarm::BeforeDeployment { created_at } => {
                write!(
                    f,
                    "stale: the event is older than the deployment ({created_at})"
                )
            }
            IgnoredAlarm::Stale { read_at } => write!(
                f,
                "stale: the alarm was read at {read_at}, after the event, and was not in ALARM"
            ),
        }
    }
}

/// Does this phase watch alarms (and may it still roll back)? The same phases whose
/// polling reads alarms: once green is ready, until blue is being removed.
fn watches_alarms(phase: &Phase) -> bool {
    match phase {
        Phase::TestTraffic(_) | Phase::Approval(_) | Phase::Shift(_) | Phase::Bake(_) => true,
        // Green-ready hooks run under the READY watch.
        Phase::HealthCheck(h) => h.hooks.is_some(),
        Phase::DrainBlue(d) => d.is_waiting(),
        Phase::Paused(p) => watches_alarms(&p.inner),
        _ => false,
    }
}

impl Deployment {
    /// What `event` would do, without doing it (the webhook answers with it).
    pub fn alarm_verdict(&self, event: &AlarmEvent) -> AlarmVerdict {
        use AlarmVerdict::Ignored;
        if !self.spec.alarms.iter().any(|a| *a == event.name) {
            return Ignored(IgnoredAlarm::NotWatched);
        }
        if event.state != AlarmState::Alarm {
            return Ignored(IgnoredAlarm::NotAlarm(event.state));
        }
        if self.phase.is_terminal() {
            return Ignored(IgnoredAlarm::Over);
        }
        if matches!(self.phase, Phase::Rollback(_)) {
            return Ignored(IgnoredAlarm::AlreadyRollingBack);
        }
        if !watches_alarms(&self.phase) {
            return Ignored(IgnoredAlarm::PhaseDoesNotWatch(self.phase.name()));
        }
        if event.at < self.created_at {
            return Ignored(IgnoredAlarm::BeforeDeployment {
                created_at: self.created_at,
            });
        }
        if let Some(read) = &self.knowledge.alarms
            && read.at > event.at
            && read
                .value
                .alarms
                .iter()
                .any(|a| a.name == event.name && a.state != AlarmState::Alarm)
        {
            return Ignored(IgnoredAlarm::Stale { read_at: read.at });
        }
        AlarmVerdict::RollsBack
    }

    pub(super) fn on_alarm_event(&mut self, now: Timestamp, event: AlarmEvent) {
        let verdict = self.alarm_verdict(&event);
        let ignored = match &verdict {
            AlarmVerdict::RollsBack => None,
            AlarmVerdict::Ignored(why) => Some(why.to_string()),
        };
        self.exec.notice(Notice::AlarmEvent {
            name: event.name.clone(),
            state: event.state,
            at: event.at,
            rolled_back: ignored.is_none(),
            ignored,
        });
        if verdict == AlarmVerdict::RollsBack {
            // Whatever the phase was waiting for, the rollback decides next.
            self.exec.wait_until = None;
            let reason = if event.reason.is_empty() {
                format!(
                    "alarm {} went into ALARM at {} (event)",
                    event.name, event.at
                )
            } else {
                format!(
                    "alarm {} went into ALARM at {} (event): {}",
                    event.name, event.at, event.reason
                )
            };
            self.escalate(now, Reason::new(ReasonKind::Alarm, reason));
        }
    }
}
