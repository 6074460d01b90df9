//! The simulated AWS account: ECS, ELBv2 and CloudWatch in one in-memory world, advanced
//! lazily in virtual time.
//!
//! Nothing happens on its own: the world holds a heap of its own future transitions (a
//! task reaching RUNNING, a target passing its health checks, a drain finishing, a
//! listener change reaching traffic) and processes them, in `(time, seq)` order, only
//! when someone advances it to a time ([`World::advance_to`]) — the harness before every
//! event, `SimCloud` before every command. An observer sees the world after each
//! transition, so the auditor judges every intermediate state, not just the ones the
//! controller happens to look at.
//!
//! One file per AWS service: [`ecs`], [`elbv2`], [`cloudwatch`]; plus [`hooks`] (the
//! user's HTTP hooks), [`api`] (calls, throttling, error codes), [`execute`] (core
//! commands → API calls), [`faults`] (the world's own misbehaviour) and [`seed`].

pub mod api;
pub mod cloudwatch;
pub mod ecs;
pub mod elbv2;
pub mod execute;
pub mod faults;
pub mod hooks;
pub mod profile;
pub mod seed;

use bluegreen_core::Name;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use bluegreen_core::Timestamp;

pub use api::{ApiCall, CallStats};
pub use ecs::{Ecs, Env, Quality, Service, Task, TaskDef, TaskSet, TaskSetState, TaskStatus};
pub use elbv2::{Elb, Forward, TargetGroup, TargetState};
pub use execute::WriteEffect;
pub use faults::WorldFaults;
pub use hooks::{HookBehaviour, HookOutcome, Hooks};
pub use profile::{ApiLimits, BucketSpec, SpanMs, WorldProfile};

use crate::rng::Rng;

/// Index of an app (one seeded draft) in the world.
pub type AppIx = u16;
/// Resources that belong to no app (a shared cluster, say).
pub const NO_APP: AppIx = AppIx::MAX;

/// Most pending world transitions; a run that needs more is a bug (a runaway crash loop
/// is bounded by the ECS scheduler's own replacement delay long before this).
pub const WORLD_EVENTS_MAX: usize = 1 << 20;

/// A world transition, due at a time. `epoch` fields invalidate transitions that a later
/// change made moot (a health check of a target that was since deregistered, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorldEvent {
    /// A PENDING task reaches RUNNING (or fails to start).
    TaskStart { task: u32, epoch: u32 },
    /// A crash-looping task exits.
    TaskCrash { task: u32, epoch: u32 },
    /// A deactivating task finished draining: deregistered and stopped.
    TaskDrained { task: u32, epoch: u32 },
    /// A target passed `healthy_threshold` checks in a row.
    TargetHealthy { task: u32, epoch: u32, tgen: u32 },
    /// A target failed `unhealthy_threshold` checks in a row.
    TargetUnhealthy { task: u32, epoch: u32, tgen: u32 },
    /// A stopped task's target finished draining and left its target group.
    TargetGone { task: u32, epoch: u32, tgen: u32 },
    /// A health flap on a target ends; checks pass again from now on.
    FlapEnd { task: u32, epoch: u32, tgen: u32 },
    /// The ECS scheduler looks at an environment again (replacing stopped tasks).
    Reconcile { env: Env },
    /// A listener change reaches traffic.
    ListenerVisible { forward: u32 },
    /// The world's own fault generators draw their next move.
    FaultTick { kind: u8 },
}

impl WorldEvent {
    fn task(&self) -> Option<u32> {
        match *self {
            WorldEvent::TaskStart { task, .. }
            | WorldEvent::TaskCrash { task, .. }
            | WorldEvent::TaskDrained { task, .. }
            | WorldEvent::TargetHealthy { task, .. }
            | WorldEvent::TargetUnhealthy { task, .. }
            | WorldEvent::TargetGone { task, .. }
            | WorldEvent::FlapEnd { task, .. } => Some(task),
            _ => None,
        }
    }
}

/// Sees the world after each of its transitions (the auditor).
pub trait WorldObserver {
    fn after_transition(&mut self, world: &World, app: AppIx);
}

impl WorldObserver for () {
    fn after_transition(&mut self, _: &World, _: AppIx) {}
}

/// The resources of one seeded app, by index, so the auditor and tests can find them
/// without string lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppResources {
    pub name: Name,
    pub target_groups: [u32; 2],
    /// Production forward (the listener's default action or its rule).
    pub prod: u32,
    pub test: Option<u32>,
    /// Service-pair: the two slots. Task-set: the one EXTERNAL service (twice).
    pub services: [u32; 2],
    pub task_set_mode: bool,
    pub alarms: Vec<u32>,
    pub family: Name,
}

/// The whole simulated account.
#[derive(Debug)]
pub struct World {
    pub(crate) now: Timestamp,
    pub(crate) profile: WorldProfile,
    pub(crate) seed: u64,
    pub(crate) rng: Rng,
    seq: u64,
    events: BinaryHeap<Reverse<(Timestamp, u64, WorldEvent)>>,
    pub ecs: Ecs,
    pub elb: Elb,
    pub cw: cloudwatch::CloudWatch,
    pub hooks: Hooks,
    pub api: api::Api,
    pub faults: WorldFaults,
    pub apps: Vec<AppResources>,
    pub(crate) app_by_name: BTreeMap<Name, AppIx>,
    /// Image references whose quality the scenario fixed (else it comes from the name).
    pub(crate) image_quality: BTreeMap<Name, Quality>,
    /// What the last `execute` changed (for the auditor).
    pub(crate) effects: Vec<WriteEffect>,
    /// Apps changed outside a transition (a fault applied directly, a command): the
    /// observer sees them at the next `advance_to`.
    pub(crate) changed: Vec<AppIx>,
    /// World transitions processed so far.
    pub transitions: u64,
}

impl World {
    /// An empty account at `now` (see [`World::seeded`] for one with apps in it).
    pub fn empty(profile: &WorldProfile, seed: u64, now: Timestamp) -> World {
        World {
            now,
            profile: profile.clone(),
            seed,
            rng: Rng::derive(seed, 0x3057_4c44),
            seq: 0,
            events: BinaryHeap::new(),
            ecs: Ecs::default(),
            elb: Elb::default(),
            cw: cloudwatch::CloudWatch::default(),
            hooks: Hooks::default(),
            api: api::Api::new(&profile.limits, now),
            faults: WorldFaults::default(),
            apps: Vec::new(),
            app_by_name: BTreeMap::new(),
            image_quality: BTreeMap::new(),
            effects: Vec::new(),
            changed: Vec::new(),
            transitions: 0,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn profile(&self) -> &WorldProfile {
        &self.profile
    }

    pub fn app(&self, name: &str) -> Option<AppIx> {
        self.app_by_name.get(name).copied()
    }

    /// Fix the quality of an image reference (overrides the name-based default).
    pub fn set_image_quality(&mut self, image: &str, quality: Quality) {
        self.image_quality.insert(Name::from(image), quality);
    }

    /// An image's quality: as the scenario fixed it, else from its name — `crashloop`
    /// crash-loops, `unhealthy` never passes health checks, `5xx` serves errors, `slow`
    /// answers slowly; anything else is healthy.
    pub fn quality_of(&self, image: &str) -> Quality {
        if let Some(q) = self.image_quality.get(image) {
            return *q;
        }
        Quality::from_name(image)
    }

    /// What the last command changed in the world.
    pub fn last_effects(&self) -> &[WriteEffect] {
        &self.effects
    }

    pub(crate) fn schedule(&mut self, at: Timestamp, event: WorldEvent) {
        assert!(
            self.events.len() < WORLD_EVENTS_MAX,
            "world event queue over its bound ({WORLD_EVENTS_MAX})"
        );
        self.seq += 1;
        self.events
            .push(Reverse((at.max(self.now), self.seq, event)));
    }

    /// When the next world transition is due (the harness uses it to audit promptly).
    pub fn next_transition_at(&self) -> Option<Timestamp> {
        self.events.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Process every transition due at or before `t`, in order, then set the clock to
    /// `t`. Time never runs backwards: an earlier `t` only returns.
    pub fn advance_to(&mut self, t: Timestamp, observer: &mut impl WorldObserver) {
        for app in std::mem::take(&mut self.changed) {
            observer.after_transition(self, app);
        }
        // Bounded by the queue's own bound: each pop either retires an event or schedules
        // strictly fewer than WORLD_EVENTS_MAX new ones.
        while let Some(Reverse((at, _, _))) = self.events.peek() {
            if *at > t {
                break;
            }
            let Some(Reverse((at, _, event))) = self.events.pop() else {
                break;
            };
            self.now = self.now.max(at);
            if let Some(app) = self.apply(event) {
                self.transitions += 1;
                observer.after_transition(self, app);
            }
        }
        self.now = self.now.max(t);
        self.api.refill(self.now);
    }

    /// Apply one transition; `Some(app)` when it changed something.
    fn apply(&mut self, event: WorldEvent) -> Option<AppIx> {
        if let Some(task) = event.task()
            && !self.ecs.task_alive(task, event_epoch(&event))
        {
            return None;
        }
        match event {
            WorldEvent::TaskStart { task, .. } => self.task_start(task),
            WorldEvent::TaskCrash { task, .. } => self.task_crash(task),
            WorldEvent::TaskDrained { task, .. } => self.task_drained(task),
            WorldEvent::TargetHealthy { task, tgen, .. } => self.target_checks(task, tgen, true),
            WorldEvent::TargetUnhealthy { task, tgen, .. } => self.target_checks(task, tgen, false),
            WorldEvent::TargetGone { task, tgen, .. } => self.target_gone(task, tgen),
            WorldEvent::FlapEnd { task, tgen, .. } => self.flap_end(task, tgen),
            WorldEvent::Reconcile { env } => {
                self.reconcile(env);
                Some(self.env_app(env))
            }
            WorldEvent::ListenerVisible { forward } => self.listener_visible(forward),
            WorldEvent::FaultTick { kind } => self.fault_tick(kind),
        }
    }
}

fn event_epoch(e: &WorldEvent) -> u32 {
    match *e {
        WorldEvent::TaskStart { epoch, .. }
        | WorldEvent::TaskCrash { epoch, .. }
        | WorldEvent::TaskDrained { epoch, .. }
        | WorldEvent::TargetHealthy { epoch, .. }
        | WorldEvent::TargetUnhealthy { epoch, .. }
        | WorldEvent::TargetGone { epoch, .. }
        | WorldEvent::FlapEnd { epoch, .. } => epoch,
        _ => 0,
    }
}

/// An ARN's short name, or a name as is (`…:service/prod/web-a` → `web-a`): the world
/// looks resources up by name whichever form a command uses.
pub(crate) use bluegreen_core::arn::short_name;

/// [`short_name`] as a [`Name`]: the name itself (shared, not copied) when it already
/// is one, so the world's keys are the very names its drafts and their commands carry.
pub(crate) fn short_name_of(name: &Name) -> Name {
    let short = short_name(name);
    if short.len() == name.len() {
        name.clone()
    } else {
        Name::from(short)
    }
}

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const REGION: &str = "us-east-1";
