//! Failures the machine cannot see for itself, reported by the program around it.

use super::Deployment;
use super::phase::Phase;
use crate::io::{Output, Reason, ReasonKind};
use crate::time::Timestamp;

impl Deployment {
    /// The controller around the machine failed in a way the machine cannot observe — a
    /// panic in its driver or in the cloud adapter while a command was out. What reached
    /// AWS is unknown, so the deployment ends `Failed` with `detail` (nothing more is
    /// sent; an operator looks at both environments). Harmless on a finished deployment.
    pub fn fail_externally(&mut self, now: Timestamp, detail: String) {
        if self.phase.is_terminal() {
            return;
        }
        let w = self.knowledge.prod_weights;
        let next = Phase::Failed {
            at: now,
            reason: Reason::new(ReasonKind::Invariant, detail.clone()),
            action_required: format!(
                "the controller failed while driving this deployment; production weights were \
                 last seen at blue {} % / green {} %: check listener {} and both environments by hand",
                w.blue, w.green, self.spec.listener.listener_arn
            ),
        };
        // Nothing more goes out: commands not yet handed over are dropped, and those
        // out are no longer waited for.
        self.exec
            .outbox
            .retain(|o| !matches!(o, Output::Command(_)));
        self.exec.in_flight.clear();
        self.exec.retries.clear();
        self.exec.wait_until = None;
        self.transition(now, next, format!("controller failure: {detail}"));
    }
}
