//! Running the user's hooks of one stage, in configuration order, each until it passes,
//! fails, or runs out of its deadline.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use crate::command::{CommandKind, HookCall, HookPayload, HookVerdict};
use crate::io::{Notice, Reason, ReasonKind};
use crate::spec::{Artifact, HookStage};
use crate::time::Timestamp;

/// Progress through one stage's hooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    pub stage: HookStage,
    /// Position among this stage's hooks.
    pub position: usize,
    /// When the current hook was first called (its deadline counts from here).
    pub started_at: Option<Timestamp>,
    pub next_call_at: Timestamp,
    /// A call is out; its verdict is read at the next decision.
    pub calling: bool,
}

/// What the hook run needs next.
pub(crate) enum HookStep {
    /// Every hook of the stage passed (or the stage has none).
    Done,
    /// A call was issued.
    Called,
    /// Waiting for `not-yet` to turn into an answer.
    WaitUntil(Timestamp),
    Failed(Reason),
}

impl HookRun {
    pub fn new(stage: HookStage, now: Timestamp) -> Self {
        HookRun {
            stage,
            position: 0,
            started_at: None,
            next_call_at: now,
            calling: false,
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.started_at = self.started_at.map(|t| t.plus_ms(ms));
        self.next_call_at = self.next_call_at.plus_ms(ms);
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_>) -> HookStep {
        // Bounded: each pass either returns or advances `position` past a passed hook.
        for _ in 0..=crate::spec::HOOKS_MAX {
            let Some((_, hook)) = cx.spec.hooks_at(self.stage).nth(self.position) else {
                return HookStep::Done;
            };
            let hook = hook.clone();
            if self.calling {
                self.calling = false;
                let verdict =
                    cx.k.hook_verdicts
                        .get(&hook.name)
                        .map(|s| s.value.clone())
                        .unwrap_or(HookVerdict::NotYet);
                cx.exec.notice(Notice::HookAnswered {
                    name: hook.name.to_string(),
                    verdict: verdict.clone(),
                });
                match verdict {
                    HookVerdict::Pass => {
                        self.position += 1;
                        self.started_at = None;
                        self.next_call_at = cx.now;
                        continue;
                    }
                    HookVerdict::Fail { reason } => {
                        return HookStep::Failed(Reason::new(
                            ReasonKind::Hook,
                            format!(
                                "hook {} ({}) failed: {reason}",
                                hook.name,
                                self.stage.as_str()
                            ),
                        ));
                    }
                    HookVerdict::NotYet => {
                        self.next_call_at = cx.now.plus_ms(hook.interval_ms);
                    }
                }
            }
            let started = *self.started_at.get_or_insert(cx.now);
            let deadline = started.plus_ms(hook.deadline_ms);
            if cx.now >= deadline {
                return HookStep::Failed(Reason::new(
                    ReasonKind::Hook,
                    format!(
                        "hook {} ({}) gave no verdict within {}",
                        hook.name,
                        self.stage.as_str(),
                        crate::time::format_duration_ms(hook.deadline_ms)
                    ),
                ));
            }
            if cx.now < self.next_call_at {
                return HookStep::WaitUntil(self.next_call_at.min(deadline));
            }
            let call = {
                let n = cx.k.hook_calls.entry(hook.name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let payload = HookPayload {
                deployment: cx.id.as_str().into(),
                app: cx.spec.app.clone(),
                stage: self.stage,
                image: match &cx.spec.artifact {
                    Artifact::Image(i) => Some(i.clone()),
                    Artifact::TaskDefinition(_) => None,
                },
                task_definition: cx.k.green_task_definition.clone(),
                weights: cx.k.prod_weights,
                green_target_group: Some(cx.green_tg().clone()),
                call,
            };
            cx.issue(
                &format!("hook-{}-{call}", hook.name),
                CommandKind::CallHook(Box::new(HookCall {
                    name: hook.name.clone(),
                    url: hook.url.clone(),
                    timeout_ms: hook.timeout_ms,
                    payload,
                })),
            );
            self.calling = true;
            return HookStep::Called;
        }
        HookStep::Done
    }
}
