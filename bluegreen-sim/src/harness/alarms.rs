//! Alarm events: CloudWatch evaluates each alarm a deployment watches and announces a
//! state change through EventBridge to the service's webhook, which hands it to every
//! running deployment watching the alarm as `Input::Alarm`. Deliveries are late, lost,
//! duplicated and retried minutes later, as `Scenario::alarm_events` draws them.
//!
//! Two things are measured here and one is checked:
//! - `Dep::alarm_fired_at` — the first evaluation that found a watched alarm in ALARM
//!   while the deployment watched alarms — and `Dep::alarm_to_blue_ms`, the time from it
//!   to the rollback's listener write reaching the world (production back on blue);
//! - the check (`Invariant::AlarmEventActs`): an event the machine accepts puts it in
//!   rollback in the same turn, and the rollback's first command goes out within
//!   [`Sim::alarm_event_bound_ms`] (the in-flight commands it waits for, nothing more).

use bluegreen_core::machine::AlarmVerdict;
use bluegreen_core::{AlarmEvent, AlarmState, Input, PhaseName, Timestamp};

use super::{Ev, Sim};
use crate::auditor::Invariant;

/// Alarm states as the events carry them (`Ev` stays `Copy`).
fn state_code(s: AlarmState) -> u8 {
    match s {
        AlarmState::Ok => 0,
        AlarmState::Alarm => 1,
        AlarmState::InsufficientData => 2,
    }
}

fn state_of(code: u8) -> AlarmState {
    match code {
        1 => AlarmState::Alarm,
        2 => AlarmState::InsufficientData,
        _ => AlarmState::Ok,
    }
}

/// The CloudWatch reason the simulated events carry.
const EVENT_REASON: &str = "Threshold Crossed (simulated alarm event)";

impl Sim {
    /// The next evaluation after now (evaluations sit on a grid: see
    /// `World::alarm_eval_ms`).
    fn next_alarm_eval(&self) -> Timestamp {
        self.world
            .alarm_evaluated_at()
            .plus_ms(self.world.alarm_eval_ms())
    }

    /// A deployment started: keep its alarms evaluated while anyone watches them. Only
    /// when the scenario has alarm events: without them nothing reads the evaluations
    /// but polling, which reads the state directly (and the throughput benches stay
    /// free of the evaluation events).
    pub(crate) fn watch_alarms(&mut self, dep: u32) {
        if !self.scenario.alarm_events.enabled {
            return;
        }
        let names = self.deps[dep as usize].spec.alarms.clone();
        for name in names.iter() {
            let Some(&ix) = self.world.cw.by_name.get(name) else {
                continue;
            };
            let ix = ix as usize;
            if self.alarm_loops.len() <= ix {
                self.alarm_loops.resize(ix + 1, None);
            }
            if self.alarm_loops[ix].is_none() {
                // The state when the loop starts is not a change (CloudWatch sends none).
                let (state, _) = self.world.alarm_state(ix as u32);
                self.alarm_loops[ix] = Some(state);
                let at = self.next_alarm_eval();
                self.queue_push(at, Ev::AlarmEval { alarm: ix as u32 });
            }
        }
    }

    /// Running deployments (controller up or down) whose spec lists alarm `name`.
    fn watchers(&self, name: &str) -> Vec<u32> {
        (0..self.deps.len() as u32)
            .filter(|&d| {
                let dep = &self.deps[d as usize];
                dep.outcome.is_none() && dep.spec.alarms.iter().any(|a| a == name)
            })
            .collect()
    }

    pub(crate) fn on_alarm_eval(&mut self, alarm: u32) {
        let name = self.world.cw.alarms[alarm as usize].name.clone();
        let watchers = self.watchers(&name);
        if watchers.is_empty() {
            self.alarm_loops[alarm as usize] = None;
            return;
        }
        let (state, _) = self.world.alarm_state(alarm);
        let before = self.alarm_loops[alarm as usize].replace(state);
        self.queue_push(self.next_alarm_eval(), Ev::AlarmEval { alarm });
        if before == Some(state) {
            return;
        }
        if state == AlarmState::Alarm {
            // The measurement's start: a watching deployment now has an alarm to act on.
            let probe = AlarmEvent {
                name: name.to_string(),
                state,
                reason: EVENT_REASON.into(),
                at: self.now,
            };
            for d in &watchers {
                let dep = &mut self.deps[*d as usize];
                if dep.alarm_fired_at.is_none()
                    && dep
                        .machine
                        .as_ref()
                        .is_some_and(|m| m.alarm_verdict(&probe) == AlarmVerdict::RollsBack)
                {
                    dep.alarm_fired_at = Some(self.now);
                }
            }
        }
        let rules = self.scenario.alarm_events;
        if !rules.enabled {
            return;
        }
        let changed = self.now;
        let code = state_code(state);
        let deliver = |sim: &mut Sim, extra_ms: u64| {
            let delay = sim.event_rng.range(rules.delay_ms.lo, rules.delay_ms.hi);
            sim.queue_push(
                changed.plus_ms(delay + extra_ms),
                Ev::AlarmDeliver {
                    alarm,
                    state: code,
                    changed,
                },
            );
        };
        if self.event_rng.chance(rules.loss) {
            self.alarm_events_lost += 1;
        } else {
            deliver(self, 0);
        }
        if self.event_rng.chance(rules.duplicate) {
            deliver(self, 0);
        }
        if self.event_rng.chance(rules.late) {
            let late = self.event_rng.range(rules.late_ms.lo, rules.late_ms.hi);
            deliver(self, late);
        }
    }

    /// The webhook hands the event to every running deployment that watches the alarm
    /// (one whose controller is down misses it: the service answers 503 and polling
    /// covers it once the controller is back).
    pub(crate) fn on_alarm_deliver(&mut self, alarm: u32, state: u8, changed: Timestamp) {
        let name = self.world.cw.alarms[alarm as usize].name.clone();
        let event = AlarmEvent {
            name: name.to_string(),
            state: state_of(state),
            reason: EVENT_REASON.into(),
            at: changed,
        };
        self.alarm_events_delivered += 1;
        for dep in self.watchers(&name) {
            let Some(m) = self.deps[dep as usize].machine.as_ref() else {
                continue;
            };
            let acts = m.alarm_verdict(&event) == AlarmVerdict::RollsBack;
            if acts {
                self.deps[dep as usize].alarm_event_at = Some(self.now);
            }
            self.turn(dep, Input::Alarm(event.clone()));
            if acts {
                self.alarm_events_acted += 1;
                let phase = self.phase_of(dep);
                if !matches!(phase, None | Some(PhaseName::Rollback))
                    && self.deps[dep as usize].outcome.is_none()
                {
                    let app = self.deps[dep as usize].app;
                    self.auditor.violation(
                        &self.world,
                        self.now,
                        Invariant::AlarmEventActs,
                        app,
                        Some(dep),
                        format!("an accepted ALARM event left the deployment in {phase:?}"),
                    );
                }
            }
        }
    }

    /// How long after an accepted alarm event the rollback's first command may go out:
    /// the machine waits for the commands already in flight — an answer's round trip
    /// with injected latency, or a lost one's command timeout (a hook's own timeout).
    pub fn alarm_event_bound_ms(&self, spec: &bluegreen_core::DeploymentSpec) -> u64 {
        let s = &self.scenario;
        let rtt = 2 * s.latency_ms.hi + 2 * s.rules.latency_max_ms();
        let hook_ms = spec.hooks.iter().map(|h| h.timeout_ms).max().unwrap_or(0);
        spec.timeouts.command_ms.max(hook_ms) + rtt + super::dispatch::LOST_ANSWER_MS + 1_000
    }

    /// A command the machine sends: the first one after an accepted alarm event must be
    /// the rollback's, within the bound.
    pub(crate) fn after_alarm_event_send(&mut self, dep: u32) {
        let Some(at) = self.deps[dep as usize].alarm_event_at else {
            return;
        };
        if self.phase_of(dep) != Some(PhaseName::Rollback) {
            return;
        }
        self.deps[dep as usize].alarm_event_at = None;
        let waited_ms = self.now.ms_since(at);
        let bound = self.alarm_event_bound_ms(&self.deps[dep as usize].spec);
        if waited_ms > bound {
            let app = self.deps[dep as usize].app;
            self.auditor.violation(
                &self.world,
                self.now,
                Invariant::AlarmEventActs,
                app,
                Some(dep),
                format!(
                    "the rollback's first command went out {waited_ms} ms after the alarm event (bound {bound} ms)"
                ),
            );
        }
    }
}

/// The rollback's listener write reached the world: production is on blue again.
pub(crate) fn after_rollback_listener_write(d: &mut super::Dep, now: Timestamp) {
    if let (Some(fired), None) = (d.alarm_fired_at, d.alarm_to_blue_ms) {
        let alarm_rollback = matches!(
            d.machine.as_ref().map(|m| m.phase()),
            Some(bluegreen_core::Phase::Rollback(r))
                if r.reason.kind == bluegreen_core::ReasonKind::Alarm
        );
        if alarm_rollback {
            d.alarm_to_blue_ms = Some(now.ms_since(fired));
        }
    }
}
