//! The world's own misbehaviour, drawn from the world's seeded RNG: tasks that fail to
//! start, health flaps, alarms that fire after a production listener change (so during
//! shift or bake), and a noisy neighbour draining the account's API buckets. All stop
//! when the harness heals the world for the liveness phase.
//!
//! Flaps never take every healthy target of a group unless the app's other group is a
//! warm standby (healthy targets, desired count above zero): a fault nothing could fix
//! would prove nothing about the controller.

use bluegreen_core::Timestamp;

use super::api::ApiCall;
use super::ecs::TaskSetState;
use super::elbv2::TargetState;
use super::profile::SpanMs;
use super::{AppIx, World, WorldEvent};

const TICK_FLAP: u8 = 0;
const TICK_NEIGHBOUR: u8 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct WorldFaults {
    /// Off: every generator below is silent.
    pub enabled: bool,
    /// Probability that a new task fails to start (CannotPullContainerError).
    pub task_start_failure: f64,
    /// Mean time between health flaps across the world (0: none).
    pub flap_mean_ms: u64,
    pub flap_duration_ms: SpanMs,
    /// Probability that a flap takes every target of its group (where allowed).
    pub flap_all: f64,
    /// Probability that a production listener change is followed by a forced alarm.
    pub alarm_after_shift: f64,
    pub alarm_delay_ms: SpanMs,
    pub alarm_duration_ms: SpanMs,
    /// Mean time between a noisy neighbour's bursts (0: none), and tokens per burst.
    pub neighbour_mean_ms: u64,
    pub neighbour_tokens: u32,
    /// What the generators did (for summaries and tests).
    pub flaps: u64,
    pub start_failures: u64,
    pub alarms_forced: u64,
}

impl Default for WorldFaults {
    fn default() -> Self {
        WorldFaults {
            enabled: false,
            task_start_failure: 0.0,
            flap_mean_ms: 0,
            flap_duration_ms: SpanMs::new(5_000, 60_000),
            flap_all: 0.0,
            alarm_after_shift: 0.0,
            alarm_delay_ms: SpanMs::new(5_000, 120_000),
            alarm_duration_ms: SpanMs::new(60_000, 300_000),
            neighbour_mean_ms: 0,
            neighbour_tokens: 0,
            flaps: 0,
            start_failures: 0,
            alarms_forced: 0,
        }
    }
}

impl WorldFaults {
    pub(crate) fn draw_start_failure(&mut self, rng: &mut crate::rng::Rng) -> bool {
        let fails =
            self.enabled && self.task_start_failure > 0.0 && rng.chance(self.task_start_failure);
        self.start_failures += u64::from(fails);
        fails
    }
}

impl World {
    /// Switch the fault generators on (with whatever rates `faults` holds).
    pub fn start_faults(&mut self) {
        self.faults.enabled = true;
        if self.faults.flap_mean_ms > 0 {
            let at = self.now.plus_ms(self.rng.exp_ms(self.faults.flap_mean_ms));
            self.schedule(at, WorldEvent::FaultTick { kind: TICK_FLAP });
        }
        if self.faults.neighbour_mean_ms > 0 {
            let at = self
                .now
                .plus_ms(self.rng.exp_ms(self.faults.neighbour_mean_ms));
            self.schedule(
                at,
                WorldEvent::FaultTick {
                    kind: TICK_NEIGHBOUR,
                },
            );
        }
    }

    /// Heal: no new faults from now on (flaps under way end on their own).
    pub fn heal(&mut self) {
        self.faults.enabled = false;
    }

    pub(crate) fn fault_tick(&mut self, kind: u8) -> Option<AppIx> {
        if !self.faults.enabled {
            return None;
        }
        let (mean, changed) = match kind {
            TICK_FLAP => (self.faults.flap_mean_ms, self.random_flap()),
            _ => {
                let calls = [
                    ApiCall::DescribeServices,
                    ApiCall::DescribeTargetHealth,
                    ApiCall::ModifyListener,
                    ApiCall::UpdateService,
                    ApiCall::DescribeAlarms,
                ];
                let call = *self.rng.pick(&calls);
                self.api.consume(call, self.faults.neighbour_tokens);
                (self.faults.neighbour_mean_ms, None)
            }
        };
        let at = self.now.plus_ms(self.rng.exp_ms(mean).max(1));
        self.schedule(at, WorldEvent::FaultTick { kind });
        changed
    }

    /// Does target group `tg`'s app have its *other* group ready to take the traffic?
    pub fn standby_for(&self, app: AppIx, tg: u32) -> bool {
        let Some(res) = self.apps.get(app as usize) else {
            return false;
        };
        let other = if res.target_groups[0] == tg {
            res.target_groups[1]
        } else {
            res.target_groups[0]
        };
        if self.elb.healthy(other) == 0 {
            return false;
        }
        // The standby is the side that was there first (blue): a group may only go dark
        // when what it would fall back to is older than it.
        if self.oldest_target_created(other) > self.oldest_target_created(tg) {
            return false;
        }
        self.ecs
            .services
            .iter()
            .any(|s| s.app == app && s.tg == Some(other) && s.desired > 0)
            || self.ecs.task_sets.iter().any(|t| {
                t.tg == other
                    && !t.gone
                    && t.state != TaskSetState::Draining
                    && self.ecs.computed_desired_of(t) > 0
            })
    }

    /// When the oldest healthy target of a group was created (`Timestamp::MAX`-like
    /// when it has none).
    pub fn oldest_target_created(&self, tg: u32) -> Timestamp {
        self.elb.target_groups[tg as usize]
            .targets
            .iter()
            .map(|t| &self.ecs.tasks[*t as usize])
            .filter(|t| t.target == TargetState::Healthy)
            .map(|t| t.created_at)
            .min()
            .unwrap_or(Timestamp::from_millis(u64::MAX))
    }

    fn random_flap(&mut self) -> Option<AppIx> {
        if self.apps.is_empty() {
            return None;
        }
        let app = self.rng.below(self.apps.len() as u64) as AppIx;
        let tg = *self.rng.pick(&self.apps[app as usize].target_groups);
        let duration = {
            let s = self.faults.flap_duration_ms;
            self.rng.range(s.lo, s.hi)
        };
        let all = self.rng.chance(self.faults.flap_all);
        let n = self.flap_group(tg, all, duration);
        (n > 0).then_some(app)
    }

    /// Flap targets of `tg`: all of them when `all` and a standby exists, else one,
    /// always leaving a healthy target when there is no standby. Returns how many.
    pub fn flap_group(&mut self, tg: u32, all: bool, duration_ms: u64) -> u32 {
        let group = &self.elb.target_groups[tg as usize];
        let app = group.app;
        let candidates: Vec<u32> = group
            .targets
            .iter()
            .copied()
            .filter(|t| {
                matches!(
                    self.ecs.tasks[*t as usize].target,
                    TargetState::Healthy | TargetState::Initial
                )
            })
            .collect();
        let healthy = group.health.healthy;
        let standby = self.standby_for(app, tg);
        let mut budget = if all { candidates.len() as u32 } else { 1 };
        if !standby {
            // Keep at least one healthy target: nothing could fix a dark live side.
            budget = budget.min(healthy.saturating_sub(1));
        }
        let mut n = 0;
        for t in candidates {
            if n >= budget {
                break;
            }
            let is_healthy = self.ecs.tasks[t as usize].target == TargetState::Healthy;
            if !standby && !is_healthy {
                continue;
            }
            if self.flap_target(t, duration_ms) {
                n += 1;
            }
        }
        self.faults.flaps += u64::from(n);
        if n > 0 && !self.changed.contains(&app) {
            self.changed.push(app);
        }
        n
    }

    /// A production listener change may be followed by a forced alarm of the app.
    pub(crate) fn maybe_alarm_after_change(&mut self, app: AppIx) {
        if !self.faults.enabled || self.faults.alarm_after_shift <= 0.0 {
            return;
        }
        let Some(res) = self.apps.get(app as usize) else {
            return;
        };
        if res.alarms.is_empty() || !self.rng.chance(self.faults.alarm_after_shift) {
            return;
        }
        let alarm = *self.rng.pick(&res.alarms);
        let (d, l) = (self.faults.alarm_delay_ms, self.faults.alarm_duration_ms);
        let from = self.now.plus_ms(self.rng.range(d.lo, d.hi));
        let until = from.plus_ms(self.rng.range(l.lo, l.hi));
        let name = self.cw.alarms[alarm as usize].name.clone();
        self.force_alarm(&name, from, until);
        self.faults.alarms_forced += 1;
    }

    /// Unused-time helper for scenarios: the world's time plus `ms`.
    pub fn after_ms(&self, ms: u64) -> Timestamp {
        self.now.plus_ms(ms)
    }
}
