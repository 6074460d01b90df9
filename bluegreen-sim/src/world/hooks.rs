//! The user's HTTP hooks, as the scenario wants them to answer: pass, fail, not-yet,
//! slow, unreachable or hanging — per hook name, rollback hooks included.

use bluegreen_core::Name;
use std::collections::BTreeMap;

use bluegreen_core::{CommandError, HookCall, HookVerdict};

/// How one hook answers. Counts are per deployment and hook, over every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookBehaviour {
    Pass,
    /// 4xx: the hook says green is bad.
    Fail,
    /// `{"verdict":"not-yet"}` this many times, then pass.
    NotYet(u32),
    /// Passes, but only after this long.
    Slow {
        delay_ms: u64,
    },
    /// Connection refused this many times (`u32::MAX`: always), then pass.
    Unreachable(u32),
    /// No answer at all this many times (`u32::MAX`: always), then pass.
    Hang(u32),
}

/// What a hook call produces.
#[derive(Clone, Debug, PartialEq)]
pub enum HookOutcome {
    Answer {
        delay_ms: u64,
        verdict: HookVerdict,
    },
    Error(CommandError),
    /// The call never returns; the caller's timeout decides.
    Hang,
}

#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub default: Option<HookBehaviour>,
    pub by_name: BTreeMap<Name, HookBehaviour>,
    /// Attempts so far per `deployment/hook`.
    pub attempts: BTreeMap<Name, u32>,
}

impl Hooks {
    pub fn set(&mut self, name: &str, behaviour: HookBehaviour) {
        self.by_name.insert(Name::from(name), behaviour);
    }

    pub fn behaviour(&self, name: &str) -> HookBehaviour {
        self.by_name
            .get(name)
            .copied()
            .or(self.default)
            .unwrap_or(HookBehaviour::Pass)
    }

    /// Answer one call (one attempt).
    pub fn answer(&mut self, call: &HookCall) -> HookOutcome {
        let key = format!("{}/{}", call.payload.deployment, call.name);
        let n = self.attempts.entry(key.into()).or_insert(0);
        *n = n.saturating_add(1);
        let n = *n;
        let pass = HookOutcome::Answer {
            delay_ms: 0,
            verdict: HookVerdict::Pass,
        };
        match self.behaviour(&call.name) {
            HookBehaviour::Pass => pass,
            HookBehaviour::Fail => HookOutcome::Answer {
                delay_ms: 0,
                verdict: HookVerdict::Fail {
                    reason: format!("hook {} answered 422", call.name),
                },
            },
            HookBehaviour::NotYet(k) if n <= k => HookOutcome::Answer {
                delay_ms: 0,
                verdict: HookVerdict::NotYet,
            },
            HookBehaviour::Slow { delay_ms } => HookOutcome::Answer {
                delay_ms,
                verdict: HookVerdict::Pass,
            },
            HookBehaviour::Unreachable(k) if n <= k => HookOutcome::Error(CommandError::retryable(
                "ConnectionRefused",
                format!("{}: connection refused", call.url),
            )),
            HookBehaviour::Hang(k) if n <= k => HookOutcome::Hang,
            HookBehaviour::NotYet(_) | HookBehaviour::Unreachable(_) | HookBehaviour::Hang(_) => {
                pass
            }
        }
    }
}
