//! Operator requests: promote, abort, pause, resume — each checked against the phase's
//! guard first (a refusal changes nothing and is the API's 409).

use super::Deployment;
use super::paused::Paused;
use super::phase::Phase;
use crate::io::{Notice, OperatorRequest, PhaseName, Reason, ReasonKind, Refused};
use crate::time::Timestamp;

impl Deployment {
    pub(super) fn on_operator(
        &mut self,
        now: Timestamp,
        request: OperatorRequest,
    ) -> Result<(), Refused> {
        self.phase.allows(&request, now).map_err(|reason| Refused {
            request: request.name().to_string(),
            phase: self.phase.name(),
            reason: reason.to_string(),
        })?;
        self.exec.notice(Notice::Operator {
            request: request.clone(),
        });
        self.exec.wait_until = None;
        match request {
            OperatorRequest::Promote => self.phase.promote(now),
            OperatorRequest::Abort { reason } => {
                let detail = reason.unwrap_or_else(|| "aborted by an operator".to_string());
                self.escalate(now, Reason::new(ReasonKind::Aborted, detail));
            }
            OperatorRequest::Pause => {
                let inner = std::mem::replace(&mut self.phase, Phase::Completed { at: now });
                let from = inner.name();
                self.phase = Phase::Paused(Paused::new(inner, now));
                self.record_transition(now, from, "paused by an operator".into());
            }
            OperatorRequest::Resume => {
                let p = match std::mem::replace(&mut self.phase, Phase::Completed { at: now }) {
                    Phase::Paused(p) => p,
                    other => {
                        // `allows` admits resume only when paused.
                        self.phase = other;
                        self.fail_invariant(now, "resume accepted outside a pause".into());
                        return Ok(());
                    }
                };
                let mut inner = *p.inner;
                let paused_ms = now.ms_since(p.since);
                inner.extend(paused_ms);
                self.phase = inner;
                self.record_transition(
                    now,
                    PhaseName::Paused,
                    format!(
                        "resumed after {}",
                        crate::time::format_duration_ms(paused_ms)
                    ),
                );
            }
        }
        Ok(())
    }
}
