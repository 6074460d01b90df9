//! approval (optional): wait for an operator's promote before production traffic; no
//! promote within the timeout rolls back. Green is watched meanwhile.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::monitor::{Monitor, Watch};
use super::phase::{Phase, Step, tick_or_wait};
use super::shift::Shift;
use crate::io::{Reason, ReasonKind};
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub deadline: Timestamp,
    pub monitor: Monitor,
    pub promoted_at: Option<Timestamp>,
}

impl Approval {
    pub fn new(now: Timestamp, timeout_ms: u64) -> Self {
        Approval {
            deadline: now.plus_ms(timeout_ms),
            monitor: Monitor::new(now),
            promoted_at: None,
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.deadline = self.deadline.plus_ms(ms);
        self.monitor.extend(ms);
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        if let Some(Err(reason)) = self.monitor.collect(cx, Watch::READY) {
            return Step::Rollback(reason);
        }
        if let Some(at) = self.promoted_at {
            return Step::Goto(
                Phase::Shift(Shift::new(cx.spec, cx.now)),
                format!("promoted by an operator at {at}"),
            );
        }
        if cx.now >= self.deadline {
            let timeout_ms = cx.spec.approval_timeout_ms.unwrap_or_default();
            return Step::Rollback(Reason::new(
                ReasonKind::Timeout,
                format!("no promote within {}", format_duration_ms(timeout_ms)),
            ));
        }
        tick_or_wait(
            &mut self.monitor,
            cx,
            Watch::READY,
            false,
            &[Some(self.deadline)],
        )
    }
}
