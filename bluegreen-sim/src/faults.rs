//! Faults as seeded rules returning a verdict (the turmoil model): for every command the
//! harness sends, the rules are consulted in order and the first non-`Pass` verdict
//! wins. Per seed a swarm draw (TigerBeetle's VOPR) decides which rules exist and how
//! often they fire, so some seeds are calm and some are storms.
//!
//! Every command id meets at most `streak_max` non-`Pass` verdicts in a row: faults that
//! never stop prove nothing, and a bounded streak is what makes the auditor's detection
//! bound a bound.

use std::collections::BTreeMap;

use bluegreen_core::ids::stable_hash64;
use bluegreen_core::{Command, CommandError, CommandKind};

use crate::rng::Rng;
use crate::world::SpanMs;

/// What happens to one command.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// Answered this much later.
    Delay(u64),
    /// Rejected before anything happened (throttled, 5xx): nothing applied.
    Fail(CommandError),
    /// Applied, but the answer is lost: the caller sees an ambiguous timeout.
    Lost,
    /// No answer at all; `applied` says whether the request got through.
    Hang {
        applied: bool,
    },
    /// A read served from a lagging replica: an answer at most this old.
    Stale {
        max_age_ms: u64,
    },
}

/// Which commands a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Reads,
    Writes,
    Hooks,
    /// Every AWS command (not hooks).
    Aws,
    /// Commands of one kind (`CommandKind::name`, e.g. `"ensure-green"`).
    Kind(&'static str),
}

impl Applies {
    fn matches(self, kind: &CommandKind) -> bool {
        let hook = matches!(kind, CommandKind::CallHook(_));
        match self {
            Applies::Reads => !hook && !kind.is_write(),
            Applies::Writes => kind.is_write(),
            Applies::Hooks => hook,
            Applies::Aws => !hook,
            Applies::Kind(name) => kind.name() == name,
        }
    }
}

/// What a rule does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Throttle,
    ServerError,
    Latency(SpanMs),
    Lost,
    Hang,
    Stale(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: &'static str,
    pub applies: Applies,
    pub probability: f64,
    pub effect: Effect,
}

/// The rules of one seed, and the streak bookkeeping that bounds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub streak_max: u8,
    /// Off in the liveness phase.
    pub enabled: bool,
    streaks: BTreeMap<u64, u8>,
    rng: Rng,
    /// Verdicts handed out, by rule index (for summaries).
    pub fired: Vec<u64>,
}

impl Rules {
    pub fn new(rules: Vec<Rule>, streak_max: u8, seed: u64) -> Self {
        let fired = vec![0; rules.len()];
        Rules {
            rules,
            streak_max,
            enabled: true,
            streaks: BTreeMap::new(),
            rng: Rng::derive(seed, 0xfa17),
            fired,
        }
    }

    /// No faults at all.
    pub fn none(seed: u64) -> Self {
        Rules::new(Vec::new(), 0, seed)
    }

    /// The verdict for one send of `command` (first non-`Pass` rule wins).
    pub fn verdict(&mut self, command: &Command) -> Verdict {
        if !self.enabled || self.rules.is_empty() {
            return Verdict::Pass;
        }
        let key = stable_hash64(command.id.as_bytes());
        let streak = self.streaks.get(&key).copied().unwrap_or(0);
        if streak >= self.streak_max {
            self.streaks.remove(&key);
            return Verdict::Pass;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.applies.matches(&command.kind) || !self.rng.chance(rule.probability) {
                continue;
            }
            let verdict = match rule.effect {
                Effect::Throttle => Verdict::Fail(CommandError::throttled(
                    "ThrottlingException",
                    "Rate exceeded (injected)",
                )),
                Effect::ServerError => Verdict::Fail(CommandError::retryable(
                    "ServiceUnavailableException",
                    "Service unavailable (injected 503)",
                )),
                Effect::Latency(span) => Verdict::Delay(self.rng.range(span.lo, span.hi)),
                Effect::Lost => Verdict::Lost,
                Effect::Hang => Verdict::Hang {
                    applied: self.rng.chance(0.5),
                },
                Effect::Stale(ms) => Verdict::Stale { max_age_ms: ms },
            };
            self.fired[i] += 1;
            // Latency alone does not count against the streak: it always answers.
            if !matches!(verdict, Verdict::Delay(_)) {
                self.streaks.insert(key, streak + 1);
            }
            return verdict;
        }
        self.streaks.remove(&key);
        Verdict::Pass
    }

    /// The longest a command can take to be answered through these rules, beyond its
    /// normal round trip, per send (latency), used by detection bounds.
    pub fn latency_max_ms(&self) -> u64 {
        self.rules
            .iter()
            .filter_map(|r| match r.effect {
                Effect::Latency(s) => Some(s.hi),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    pub fn stale_max_ms(&self) -> u64 {
        self.rules
            .iter()
            .filter_map(|r| match r.effect {
                Effect::Stale(ms) => Some(ms),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    pub fn has(&self, effect: fn(&Effect) -> bool) -> bool {
        self.rules.iter().any(|r| effect(&r.effect))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluegreen_core::{CommandId, DeploymentId, Observe};

    fn read(step: &str) -> Command {
        Command {
            id: CommandId::new(&DeploymentId::new("d").unwrap(), step),
            attempt: 1,
            kind: CommandKind::Observe(Observe::TargetHealth {
                target_group: "tg".into(),
            }),
        }
    }

    #[test]
    fn a_command_meets_at_most_streak_max_faults_in_a_row() {
        let rule = Rule {
            name: "always-throttle",
            applies: Applies::Aws,
            probability: 1.0,
            effect: Effect::Throttle,
        };
        let mut rules = Rules::new(vec![rule], 2, 1);
        let c = read("x");
        let verdicts: Vec<bool> = (0..6).map(|_| rules.verdict(&c) == Verdict::Pass).collect();
        assert_eq!(verdicts, [false, false, true, false, false, true]);
    }

    #[test]
    fn rules_only_fire_on_the_commands_they_apply_to_and_not_when_disabled() {
        let rule = Rule {
            name: "writes-lost",
            applies: Applies::Writes,
            probability: 1.0,
            effect: Effect::Lost,
        };
        let mut rules = Rules::new(vec![rule], 3, 1);
        assert_eq!(rules.verdict(&read("r")), Verdict::Pass);
        rules.enabled = false;
        assert_eq!(rules.verdict(&read("r")), Verdict::Pass);
    }
}
