//! The auditor: checks every invariant of DESIGN §4 against the *world* — never against
//! the machine's beliefs — after every event (TigerBeetle's auditor model).
//!
//! It is told four things by whoever drives the world: a deployment began, the machine
//! was told something (only target health matters: it is what licenses traffic), a
//! command changed the world (the world's own record of what changed), and the machine
//! moved phase. As a [`WorldObserver`] it also sees every world transition (a target
//! turning unhealthy, a listener change reaching traffic) at the time it happens.
//!
//! Invariant 1 (no dark traffic) is judged twice:
//! - at the moment a listener write applies: a write that *adds* weight to a target
//!   group with no healthy target is the controller's fault unless the last health the
//!   machine was told for that group showed healthy targets (the world changed, or
//!   lied, under it) — a blind write, or one against what it was told, is a violation;
//! - at rest: whenever a listener's effective weights send traffic to a group with no
//!   healthy target (a "dark episode", typically a fault flapping green), the episode
//!   must end within the deployment's detection bound while a warm standby exists to
//!   roll back to. Removing blue while green is dark is a violation on the spot.
//!
//! Invariants 6 (determinism) and 7 (liveness) are the harness's to check; it reports
//! them here so every violation is in one list.

mod checks;
mod rest;

use bluegreen_core::{PhaseName, Reason, ReasonKind, Timestamp};
use serde::Serialize;

use crate::world::{AppIx, World, WorldObserver};

/// The invariants of DESIGN §4 (0: the machine caught itself violating its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Invariant {
    MachineInvariant = 0,
    NoDarkTraffic = 1,
    OneOwnerAtRest = 2,
    RollbackIsSafe = 3,
    NoLeaksNoDuplicates = 4,
    OneDeploymentPerApp = 5,
    Determinism = 6,
    Liveness = 7,
    /// An ALARM event the machine accepts starts the rollback in that turn, and its first
    /// command goes out once the commands in flight are answered.
    AlarmEventActs = 8,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::MachineInvariant => "machine-invariant",
            Invariant::NoDarkTraffic => "no-dark-traffic",
            Invariant::OneOwnerAtRest => "one-owner-at-rest",
            Invariant::RollbackIsSafe => "rollback-is-safe",
            Invariant::NoLeaksNoDuplicates => "no-leaks-no-duplicates",
            Invariant::OneDeploymentPerApp => "one-deployment-per-app",
            Invariant::Determinism => "determinism",
            Invariant::Liveness => "liveness",
            Invariant::AlarmEventActs => "alarm-event-acts",
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub at: Timestamp,
    pub invariant: Invariant,
    pub app: String,
    pub deployment: Option<String>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} ({}) at {}: app {}{}: {}",
            self.invariant as u8,
            self.invariant.name(),
            self.at,
            self.app,
            self.deployment
                .as_deref()
                .map(|d| format!(", deployment {d}"))
                .unwrap_or_default(),
            self.detail
        )
    }
}

/// What the auditor needs to know about a deployment when it begins.
#[derive(Clone, Debug)]
pub struct DeploymentInfo {
    pub id: String,
    pub app: AppIx,
    /// The spec's drain time: blue may lose capacity only this long after its last
    /// production weight was removed.
    pub drain_ms: u64,
    /// How long a dark episode may last before the controller must have rolled back.
    pub detection_ms: u64,
    /// The age the freshest look at the world a controller can have when its write
    /// lands (a round trip, injected latency, a stale read): darkness younger than this
    /// when blue is removed could not have been seen.
    pub look_grace_ms: u64,
}

/// A listener sending traffic to a group with no healthy target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Episode {
    pub forward: u32,
    pub tg: u32,
    pub since: Timestamp,
    pub reported: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct AppAudit {
    /// The deployment in progress.
    pub current: Option<u32>,
    /// The last deployment that began.
    pub last: Option<u32>,
    pub episodes: Vec<Episode>,
}

#[derive(Clone, Debug)]
pub(crate) struct DepAudit {
    pub info: DeploymentInfo,
    /// Slot holding all production weight at the start (`None`: not at rest).
    pub blue_slot: Option<usize>,
    pub blue_desired: u32,
    pub blue_task_set: Option<u32>,
    /// Output order (the caller's counter) of the transition to rollback.
    pub rollback_since: Option<u64>,
    /// When production's blue weight last went to 0 (by a write of this deployment).
    pub blue_zero_since: Option<Timestamp>,
    pub task_sets_created: u32,
    pub writes: u32,
    /// (target group, when, healthy) as last told to the machine.
    pub told: Vec<(u32, Timestamp, u32)>,
    pub terminal: Option<PhaseName>,
}

/// The auditor of one world.
#[derive(Clone, Debug, Default)]
pub struct Auditor {
    pub(crate) apps: Vec<AppAudit>,
    pub(crate) deps: Vec<DepAudit>,
    pub violations: Vec<Violation>,
    /// Times at which a dark episode's bound runs out (the harness audits then).
    pub deadlines: Vec<Timestamp>,
    /// Dark episodes seen, and how many lasted past their bound with no standby left
    /// (nothing could have fixed those).
    pub dark_episodes: u64,
    pub unfixable_dark: u64,
    /// Checks performed (so a test can prove the auditor looked at all).
    pub checks: u64,
    /// Keep human notes of what the auditor saw (dark episodes opening and closing).
    pub keep_notes: bool,
    pub notes: Vec<String>,
}

/// Most violations kept (the first ones are what matters).
pub const VIOLATIONS_MAX: usize = 64;

impl Auditor {
    pub fn new() -> Self {
        Auditor::default()
    }

    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    fn app_mut(&mut self, app: AppIx) -> &mut AppAudit {
        let i = app as usize;
        if self.apps.len() <= i {
            self.apps.resize_with(i + 1, AppAudit::default);
        }
        &mut self.apps[i]
    }

    /// Record a violation (the harness reports determinism and liveness here too).
    pub fn violation(
        &mut self,
        world: &World,
        at: Timestamp,
        invariant: Invariant,
        app: AppIx,
        dep: Option<u32>,
        detail: String,
    ) {
        if self.violations.len() >= VIOLATIONS_MAX {
            return;
        }
        self.violations.push(Violation {
            at,
            invariant,
            app: world
                .apps
                .get(app as usize)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| format!("#{app}").into())
                .to_string(),
            deployment: dep
                .and_then(|d| self.deps.get(d as usize))
                .map(|d| d.info.id.clone()),
            detail,
        });
    }

    /// Deployment `dep` (numbered by the caller, from 0 up) of `info.app` begins now.
    pub fn begin(&mut self, world: &World, dep: u32, info: DeploymentInfo) {
        let app = info.app;
        if let Some(cur) = self.app_mut(app).current
            && self.deps[cur as usize].terminal.is_none()
        {
            let other = self.deps[cur as usize].info.id.clone();
            self.violation(
                world,
                world.now(),
                Invariant::OneDeploymentPerApp,
                app,
                None,
                format!(
                    "deployment {} began while {other} was still running",
                    info.id
                ),
            );
        }
        let (blue_slot, blue_desired, blue_task_set) = checks::blue_at_start(world, app);
        assert_eq!(
            self.deps.len(),
            dep as usize,
            "deployments are numbered in order"
        );
        self.deps.push(DepAudit {
            info,
            blue_slot,
            blue_desired,
            blue_task_set,
            rollback_since: None,
            blue_zero_since: None,
            task_sets_created: 0,
            writes: 0,
            told: Vec::new(),
            terminal: None,
        });
        let a = self.app_mut(app);
        a.current = Some(dep);
        a.last = Some(dep);
    }

    /// The machine was handed this health for target group `tg`.
    pub fn told_health(&mut self, dep: u32, tg: u32, healthy: u32, at: Timestamp) {
        let d = &mut self.deps[dep as usize];
        match d.told.iter_mut().find(|(t, _, _)| *t == tg) {
            Some(slot) => *slot = (tg, at, healthy),
            None => d.told.push((tg, at, healthy)),
        }
    }

    /// The machine moved to `to`. `order` numbers the machine's outputs (the caller's
    /// counter, increasing): commands with a higher number were issued after this.
    pub fn transition(&mut self, dep: u32, to: PhaseName, order: u64) {
        let d = &mut self.deps[dep as usize];
        if to == PhaseName::Rollback && d.rollback_since.is_none() {
            d.rollback_since = Some(order);
        }
    }

    /// The deployment ended in `phase`: judge what it left behind.
    pub fn terminal(&mut self, world: &World, dep: u32, phase: PhaseName, reason: Option<&Reason>) {
        self.checks += 1;
        let d = &mut self.deps[dep as usize];
        d.terminal = Some(phase);
        let app = d.info.app;
        if self.apps[app as usize].current == Some(dep) {
            self.apps[app as usize].current = None;
        }
        if let Some(r) = reason
            && r.kind == ReasonKind::Invariant
        {
            self.violation(
                world,
                world.now(),
                Invariant::MachineInvariant,
                app,
                Some(dep),
                format!("the machine stopped itself: {}", r.detail),
            );
        }
        rest::at_rest(self, world, dep, phase);
    }

    /// Audit dark episodes whose bound has run out.
    pub fn check_deadlines(&mut self, world: &World) {
        checks::episode_deadlines(self, world);
    }

    /// The final word when the run is over: every app at rest, one owner, no leftovers.
    pub fn final_check(&mut self, world: &World) {
        rest::final_check(self, world);
    }

    /// A command of deployment `dep` (output number `issued`, see [`Auditor::transition`])
    /// just changed the world as `world.last_effects()` says.
    pub fn after_command(&mut self, world: &World, dep: u32, issued: u64) {
        if world.last_effects().is_empty() {
            return;
        }
        checks::writes(self, world, dep, issued);
        // A write can darken a group at once (a scale-down deregisters its targets).
        let app = self.deps[dep as usize].info.app;
        if (app as usize) < world.apps.len() {
            checks::dark_scan(self, world, app);
        }
    }
}

impl WorldObserver for Auditor {
    fn after_transition(&mut self, world: &World, app: AppIx) {
        if (app as usize) < world.apps.len() {
            checks::dark_scan(self, world, app);
        }
    }
}
