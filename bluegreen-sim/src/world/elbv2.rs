//! ELBv2: load balancers, target groups with health checks and a deregistration delay,
//! and listeners (default action or rules) with weighted forward actions whose changes
//! reach traffic a little after the API call returns.

use bluegreen_core::Name;
use std::collections::{BTreeMap, VecDeque};

use bluegreen_core::{ListenerState, TargetHealth, TargetWeight, Timestamp};

use super::ecs::Quality;
use super::{AppIx, World, WorldEvent};

/// ALB limits on one forward action.
pub const FORWARD_TARGETS_MAX: usize = 5;
pub const WEIGHT_MAX: u32 = 999;
/// Effective-forward history kept per forward (for metrics over past periods).
pub const FORWARD_HISTORY_MAX: usize = 64;
/// Quality changes remembered per target group (for metrics over past periods).
pub const QUALITY_HISTORY_MAX: usize = 64;

/// A target's state in its target group (`None`: not registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    None,
    Initial,
    Healthy,
    Unhealthy,
    Draining,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetGroup {
    pub arn: Name,
    /// `[arn]`, made once: the target-group list a service or task set bound to this
    /// group answers with at every read.
    pub arn_list: std::sync::Arc<[Name]>,
    pub name: Name,
    /// The CloudWatch `TargetGroup` dimension, `targetgroup/<name>/<id>`.
    pub dimension: Name,
    pub lb: Option<u32>,
    pub app: AppIx,
    pub interval_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub deregistration_delay_ms: u64,
    /// Registered tasks (any state but `None`).
    pub targets: Vec<u32>,
    /// Target counts by state, kept in step with `targets`.
    pub health: TargetHealth,
    /// (since, quality of what the group serves).
    pub quality_history: VecDeque<(Timestamp, Quality)>,
    /// Tags written by `TagSlots` (nothing else in the world reads them).
    pub tags: std::collections::BTreeMap<Name, Name>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancer {
    /// The CloudWatch `LoadBalancer` dimension, `app/<name>/<id>`.
    pub dimension: Name,
    pub app: AppIx,
}

/// A weighted forward action: a listener's default action or one rule's.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    pub app: AppIx,
    pub listener: u32,
    pub rule_arn: Option<Name>,
    /// What the API holds (and Describe* returns).
    pub config: Vec<(u32, u32)>,
    /// What traffic follows (the config a few seconds later).
    pub effective: Vec<(u32, u32)>,
    /// (since, effective) — the last `FORWARD_HISTORY_MAX` changes.
    pub history: VecDeque<(Timestamp, Vec<(u32, u32)>)>,
    /// Writes that changed `config` so far.
    pub writes: u32,
}

impl Forward {
    pub fn weight_of(config: &[(u32, u32)], tg: u32) -> u32 {
        config
            .iter()
            .filter(|(t, _)| *t == tg)
            .map(|(_, w)| *w)
            .sum()
    }

    pub fn total(config: &[(u32, u32)]) -> u32 {
        config.iter().map(|(_, w)| *w).sum()
    }

    /// The effective forward at time `at`.
    pub fn effective_at(&self, at: Timestamp) -> &[(u32, u32)] {
        self.history
            .iter()
            .rev()
            .find(|(since, _)| *since <= at)
            .or(self.history.front())
            .map(|(_, f)| f.as_slice())
            .unwrap_or(&self.effective)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub arn: Name,
    pub lb: u32,
    pub app: AppIx,
    /// The default action's forward; `None` when the default action is a fixed response.
    pub default: Option<u32>,
    pub rules: Vec<(Name, u32)>,
}

#[derive(Clone, Debug, Default)]
pub struct Elb {
    pub load_balancers: Vec<LoadBalancer>,
    pub target_groups: Vec<TargetGroup>,
    pub listeners: Vec<Listener>,
    pub forwards: Vec<Forward>,
    pub(crate) tg_by_arn: BTreeMap<Name, u32>,
    pub(crate) tg_by_dimension: BTreeMap<Name, u32>,
    pub(crate) listener_by_arn: BTreeMap<Name, u32>,
    pub(crate) lb_by_dimension: BTreeMap<Name, u32>,
}

impl Elb {
    /// The target group with this ARN, as a `&str` or as a [`Name`]: a name a command
    /// carries is usually the very key the world was seeded with, found by address
    /// rather than by comparing the ARN's text.
    pub fn target_group<Q>(&self, arn: &Q) -> Option<u32>
    where
        Name: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.tg_by_arn.get(arn).copied()
    }

    pub fn listener(&self, arn: &str) -> Option<u32> {
        self.listener_by_arn.get(arn).copied()
    }

    /// The forward a listener ref addresses: `Err(code)` names what is missing.
    pub fn forward_of(
        &self,
        listener_arn: &str,
        rule_arn: Option<&str>,
    ) -> Result<Option<u32>, &'static str> {
        let l = self.listener(listener_arn).ok_or("ListenerNotFound")?;
        let l = &self.listeners[l as usize];
        match rule_arn {
            None => Ok(l.default),
            Some(rule) => l
                .rules
                .iter()
                .find(|(arn, _)| arn == rule)
                .map(|(_, f)| Some(*f))
                .ok_or("RuleNotFound"),
        }
    }

    /// A forward's config as the API returns it.
    pub fn state_of(&self, forward: Option<u32>) -> ListenerState {
        let Some(f) = forward else {
            return ListenerState { forwards: vec![] };
        };
        ListenerState {
            forwards: self.forwards[f as usize]
                .config
                .iter()
                .map(|(tg, w)| TargetWeight {
                    target_group: self.target_groups[*tg as usize].arn.clone(),
                    weight: *w,
                })
                .collect(),
        }
    }

    pub fn healthy(&self, tg: u32) -> u32 {
        self.target_groups[tg as usize].health.healthy
    }

    /// The quality a group served at `at`.
    pub fn quality_at(&self, tg: u32, at: Timestamp) -> Quality {
        let h = &self.target_groups[tg as usize].quality_history;
        h.iter()
            .rev()
            .find(|(since, _)| *since <= at)
            .or(h.front())
            .map(|(_, q)| *q)
            .unwrap_or(Quality::Healthy)
    }
}

fn count(h: &mut TargetHealth, s: TargetState, delta: i32) {
    let slot = match s {
        TargetState::None => return,
        TargetState::Initial => &mut h.initial,
        TargetState::Healthy => &mut h.healthy,
        TargetState::Unhealthy => &mut h.unhealthy,
        TargetState::Draining => &mut h.draining,
    };
    *slot = slot
        .checked_add_signed(delta)
        .expect("target counts never go negative");
}

impl World {
    /// DescribeTargetHealth: the counts, with the reason codes and descriptions ELBv2
    /// gives for each state that is not healthy (its own texts).
    pub(crate) fn describe_target_health(&self, tg: u32) -> TargetHealth {
        let mut h = self.elb.target_groups[tg as usize].health.clone();
        let (unhealthy, initial, draining) = (h.unhealthy, h.initial, h.draining);
        h.note_reason(
            "unhealthy",
            "Target.ResponseCodeMismatch",
            Some("Health checks failed with these codes: [503]".into()),
            unhealthy,
        );
        h.note_reason(
            "initial",
            "Elb.InitialHealthChecking",
            Some("Initial health checks in progress".into()),
            initial,
        );
        h.note_reason(
            "draining",
            "Target.DeregistrationInProgress",
            Some("Target deregistration is in progress".into()),
            draining,
        );
        h
    }

    pub(crate) fn set_target(&mut self, task: u32, next: TargetState) {
        let t = &mut self.ecs.tasks[task as usize];
        let Some(tg) = t.tg else { return };
        let prev = t.target;
        if prev == next {
            return;
        }
        t.target = next;
        t.tgen = t.tgen.wrapping_add(1);
        let quality = t.quality;
        let group = &mut self.elb.target_groups[tg as usize];
        count(&mut group.health, prev, -1);
        count(&mut group.health, next, 1);
        if prev == TargetState::None {
            group.targets.push(task);
        }
        if next == TargetState::None {
            group.targets.retain(|x| *x != task);
        }
        if next == TargetState::Healthy
            && group.quality_history.back().map(|(_, q)| *q) != Some(quality)
        {
            if group.quality_history.len() >= QUALITY_HISTORY_MAX {
                group.quality_history.pop_front();
            }
            group.quality_history.push_back((self.now, quality));
        }
    }

    fn schedule_checks(&mut self, task: u32, passing: bool) {
        let t = &self.ecs.tasks[task as usize];
        let Some(tg) = t.tg else { return };
        let (epoch, tgen) = (t.epoch, t.tgen);
        let g = &self.elb.target_groups[tg as usize];
        let (interval, threshold) = if passing {
            (g.interval_ms, g.healthy_threshold)
        } else {
            (g.interval_ms, g.unhealthy_threshold)
        };
        // The first check lands anywhere in the first interval.
        let first = self.rng.range(1, interval.max(1));
        let at = self
            .now
            .plus_ms(first + interval * u64::from(threshold.saturating_sub(1)));
        let event = if passing {
            WorldEvent::TargetHealthy { task, epoch, tgen }
        } else {
            WorldEvent::TargetUnhealthy { task, epoch, tgen }
        };
        self.schedule(at, event);
    }

    /// ECS registers a task with its target group when it reaches RUNNING.
    pub(crate) fn register_target(&mut self, task: u32) {
        if self.ecs.tasks[task as usize].tg.is_none() {
            return;
        }
        self.set_target(task, TargetState::Initial);
        let passing = self.ecs.tasks[task as usize].quality.passes_health_checks();
        self.schedule_checks(task, passing);
    }

    /// Deregister: the target drains for the group's delay. `Some(until)` when it was
    /// registered.
    pub(crate) fn begin_draining(&mut self, task: u32) -> Option<Timestamp> {
        let t = &self.ecs.tasks[task as usize];
        let tg = t.tg?;
        if !matches!(
            t.target,
            TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy
        ) {
            return None;
        }
        self.set_target(task, TargetState::Draining);
        let delay = self.elb.target_groups[tg as usize].deregistration_delay_ms;
        Some(self.now.plus_ms(delay))
    }

    pub(crate) fn remove_target(&mut self, task: u32) {
        self.set_target(task, TargetState::None);
    }

    /// Health checks crossed a threshold.
    pub(crate) fn target_checks(&mut self, task: u32, tgen: u32, passing: bool) -> Option<AppIx> {
        let t = &self.ecs.tasks[task as usize];
        if t.tgen != tgen
            || !matches!(
                t.target,
                TargetState::Initial | TargetState::Unhealthy | TargetState::Healthy
            )
        {
            return None;
        }
        if t.flap_until.is_some_and(|u| u > self.now) {
            return None;
        }
        let app = t.app;
        self.set_target(
            task,
            if passing {
                TargetState::Healthy
            } else {
                TargetState::Unhealthy
            },
        );
        Some(app)
    }

    pub(crate) fn target_gone(&mut self, task: u32, tgen: u32) -> Option<AppIx> {
        let t = &self.ecs.tasks[task as usize];
        if t.tgen != tgen || t.target != TargetState::Draining {
            return None;
        }
        let app = t.app;
        self.remove_target(task);
        self.free_if_done(task);
        Some(app)
    }

    /// A health flap: the target fails its checks for `duration_ms`, then needs
    /// `healthy_threshold` passing checks to return.
    pub fn flap_target(&mut self, task: u32, duration_ms: u64) -> bool {
        let t = &self.ecs.tasks[task as usize];
        if !t.alive || !matches!(t.target, TargetState::Initial | TargetState::Healthy) {
            return false;
        }
        let until = self.now.plus_ms(duration_ms.max(1));
        self.set_target(task, TargetState::Unhealthy);
        let t = &mut self.ecs.tasks[task as usize];
        t.flap_until = Some(until);
        let (epoch, tgen) = (t.epoch, t.tgen);
        self.schedule(until, WorldEvent::FlapEnd { task, epoch, tgen });
        true
    }

    pub(crate) fn flap_end(&mut self, task: u32, tgen: u32) -> Option<AppIx> {
        let t = &mut self.ecs.tasks[task as usize];
        if t.tgen != tgen || t.target != TargetState::Unhealthy {
            return None;
        }
        t.flap_until = None;
        let passing = t.quality.passes_health_checks();
        self.schedule_checks(task, passing);
        None
    }

    /// ModifyListener / ModifyRule: the config changes now, traffic follows later.
    pub(crate) fn set_forward(&mut self, forward: u32, config: Vec<(u32, u32)>) {
        let f = &mut self.elb.forwards[forward as usize];
        if f.config != config {
            f.writes += 1;
        }
        f.config = config;
        let span = self.profile.listener_visible_ms;
        let delay = self.rng.range(span.lo, span.hi);
        self.schedule(
            self.now.plus_ms(delay),
            WorldEvent::ListenerVisible { forward },
        );
    }

    pub(crate) fn listener_visible(&mut self, forward: u32) -> Option<AppIx> {
        let now = self.now;
        let f = &mut self.elb.forwards[forward as usize];
        if f.effective == f.config {
            return None;
        }
        f.effective = f.config.clone();
        if f.history.len() >= FORWARD_HISTORY_MAX {
            f.history.pop_front();
        }
        f.history.push_back((now, f.effective.clone()));
        Some(f.app)
    }
}
