//! test traffic (optional): point the test listener at green, run the `test-traffic`
//! hooks, hold for the configured time. Production is untouched.

use super::reasons::RefusalReason;
use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::hooks::{HookRun, HookStep};
use super::knowledge::forwards;
use super::monitor::{Monitor, Watch};
use super::phase::{Step, after_test, tick_or_wait};
use crate::command::{CommandKind, Weights};
use crate::spec::HookStage;
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestTraffic {
    pub stage: TestStage,
    pub monitor: Monitor,
    pub hooks: HookRun,
    /// Set when the hooks have passed: the hold ends here (promote ends it now).
    pub hold_until: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestStage {
    Start,
    /// The test-listener write is out.
    Pointing,
    Testing,
}

impl TestTraffic {
    pub fn new(now: Timestamp) -> Self {
        TestTraffic {
            stage: TestStage::Start,
            monitor: Monitor::new(now),
            hooks: HookRun::new(HookStage::TestTraffic, now),
            hold_until: None,
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.monitor.extend(ms);
        self.hooks.extend(ms);
        self.hold_until = self.hold_until.map(|t| t.plus_ms(ms));
    }

    pub(crate) fn can_promote(&self, now: Timestamp) -> Result<(), RefusalReason> {
        match self.hold_until {
            Some(t) if t > now => Ok(()),
            _ => Err(RefusalReason::TestHooksRunning),
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.stage {
            TestStage::Start => {
                let Some(listener) = cx.spec.test_listener.clone() else {
                    return Step::Broken("test traffic without a test listener".into());
                };
                let weights = forwards(cx.blue_tg(), cx.green_tg(), Weights::ALL_GREEN);
                cx.issue(
                    "test-listener-green",
                    CommandKind::SetListenerWeights { listener, weights },
                );
                self.stage = TestStage::Pointing;
                Step::Issued
            }
            TestStage::Pointing => {
                self.stage = TestStage::Testing;
                self.monitor = Monitor::new(cx.now);
                self.hooks = HookRun::new(HookStage::TestTraffic, cx.now);
                self.testing(cx)
            }
            TestStage::Testing => self.testing(cx),
        }
    }

    fn testing(&mut self, cx: &mut Cx<'_>) -> Step {
        if let Some(Err(reason)) = self.monitor.collect(cx, Watch::READY) {
            return Step::Rollback(reason);
        }
        let mut issued = false;
        let mut wake = None;
        if self.hold_until.is_none() {
            match self.hooks.step(cx) {
                HookStep::Done => {
                    self.hold_until = Some(cx.now.plus_ms(cx.spec.test_traffic_ms));
                }
                HookStep::Failed(reason) => return Step::Rollback(reason),
                HookStep::Called => issued = true,
                HookStep::WaitUntil(at) => wake = Some(at),
            }
        }
        if let Some(until) = self.hold_until
            && cx.now >= until
        {
            return Step::Goto(after_test(cx), "test traffic on green passed".into());
        }
        tick_or_wait(
            &mut self.monitor,
            cx,
            Watch::READY,
            issued,
            &[wake, self.hold_until],
        )
    }
}
