//! bake: green at 100 %, blue still at full capacity, the `after-shift` hooks, then the
//! bake time with every signal watched. Promote ends the bake early.

use super::reasons::RefusalReason;
use serde::{Deserialize, Serialize};

use super::drain_blue::DrainBlue;
use super::exec::Cx;
use super::hooks::{HookRun, HookStep};
use super::monitor::{Monitor, Watch};
use super::phase::{Phase, Step, tick_or_wait};
use crate::spec::HookStage;
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bake {
    pub monitor: Monitor,
    pub hooks: HookRun,
    /// Set when the hooks have passed.
    pub until: Option<Timestamp>,
}

impl Bake {
    pub fn new(now: Timestamp) -> Self {
        Bake {
            monitor: Monitor::new(now),
            hooks: HookRun::new(HookStage::AfterShift, now),
            until: None,
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.monitor.extend(ms);
        self.hooks.extend(ms);
        self.until = self.until.map(|t| t.plus_ms(ms));
    }

    pub(crate) fn can_promote(&self, now: Timestamp) -> Result<(), RefusalReason> {
        match self.until {
            Some(t) if t > now => Ok(()),
            _ => Err(RefusalReason::BakeHooksRunning),
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        if let Some(Err(reason)) = self.monitor.collect(cx, Watch::LIVE) {
            return Step::Rollback(reason);
        }
        let mut issued = false;
        let mut wake = None;
        if self.until.is_none() {
            match self.hooks.step(cx) {
                HookStep::Done => self.until = Some(cx.now.plus_ms(cx.spec.bake_ms)),
                HookStep::Failed(reason) => return Step::Rollback(reason),
                HookStep::Called => issued = true,
                HookStep::WaitUntil(at) => wake = Some(at),
            }
        }
        if let Some(until) = self.until
            && cx.now >= until
        {
            return Step::Goto(
                Phase::DrainBlue(DrainBlue::new(cx)),
                format!(
                    "baked {} with no signal",
                    format_duration_ms(cx.spec.bake_ms)
                ),
            );
        }
        tick_or_wait(
            &mut self.monitor,
            cx,
            Watch::LIVE,
            issued,
            &[wake, self.until],
        )
    }
}
