//! The discrete-event harness: one heap of `(time, seq, event)`, no tokio, no threads.
//! Many deployments of different apps share one world; each seed runs a safety phase
//! with faults, then a liveness phase with faults healed in which every deployment must
//! reach a terminal outcome within a bound. The auditor sees the world after every
//! event and every world transition.
//!
//! Driving the machine follows core's protocol exactly: `handle(now, input)`, drain
//! `poll(now)` until `Idle`, execute commands, report `CommandDone`, `Wake` at `wake_at`.
//! A command crosses the network twice: it *arrives* (the world applies it) a short
//! leg after it was sent, and its answer *returns* a leg later — so a crash, an abort or
//! a fault can fall between the two.

mod alarms;
mod deploy;
mod dispatch;
mod queue;
pub mod report;
pub mod swarm;

use std::collections::BTreeMap;

use bluegreen_core::admission::Admission;
use bluegreen_core::journal::Recorder;
use bluegreen_core::{
    CommandResult, Deployment, DeploymentId, DeploymentSpec, OperatorRequest, PhaseName,
    ReasonKind, Timestamp,
};

pub use report::{DepReport, RunReport, Summary};
pub use swarm::{
    AlarmEvents, AppPlan, CrashPlan, OperatorPlan, Profile, Push, Scenario, app_draft,
};

use crate::auditor::{Auditor, Invariant};
use crate::rng::Rng;
use crate::trace::Trace;
use crate::world::World;
use queue::{EventQueue, Queued};

/// Most events one run may process (a runaway loop is a liveness failure, not a hang).
pub const EVENTS_MAX: u64 = 5_000_000;
/// Most outputs drained from the machine per input (core's own bound is far below).
pub const OUTPUTS_PER_TURN_MAX: usize = 1_000;
/// Virtual time a run may last past its start.
pub const RUN_MS_MAX: u64 = 30 * 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ev {
    Push {
        app: u16,
        push: u16,
    },
    Start {
        app: u16,
    },
    Wake {
        dep: u32,
    },
    Arrive {
        slot: u32,
    },
    Respond {
        slot: u32,
    },
    /// `req`: 0 promote, 1 pause, 2 resume, 3 abort, 255 a random one.
    Operator {
        dep: u32,
        req: u8,
    },
    Crash {
        dep: u32,
    },
    Restart {
        dep: u32,
    },
    Heal,
    Audit,
    /// CloudWatch evaluates alarm `alarm` (world index) while deployments watch it.
    AlarmEval {
        alarm: u32,
    },
    /// An alarm state change (`state`: 0 OK, 1 ALARM, 2 INSUFFICIENT_DATA, from
    /// `changed`) reaches the service's webhook.
    AlarmDeliver {
        alarm: u32,
        state: u8,
        changed: Timestamp,
    },
    /// A command queued by the client's API budget reaches its hold limit.
    Gate {
        slot: u32,
    },
    /// Queued commands try the budget again.
    BudgetScan {
        at: Timestamp,
    },
}

/// How much a run records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Keep the trace's text lines.
    pub trace_text: bool,
    /// Print trace lines as they happen.
    pub echo: bool,
    /// Journal every deployment (core's journal protocol) for `replay`.
    pub journal: bool,
    /// Skip the plan of each app (its dry run costs about one deployment): reports then
    /// carry no lower bound of AWS calls. Throughput benches measure both ways.
    pub no_plans: bool,
    /// Keep every change the world saw from a deployment (`Sim::writes`), for tests.
    pub record_writes: bool,
}

/// A change a deployment made to the world, when `record_writes` is on.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteRecord {
    pub at: Timestamp,
    pub dep: u32,
    pub command: String,
    pub effect: crate::world::WriteEffect,
}

/// One deployment as the harness drives it.
#[derive(Debug)]
pub struct Dep {
    pub id: DeploymentId,
    pub app: u16,
    /// The push it deploys.
    pub push: u16,
    pub spec: DeploymentSpec,
    /// `None` while the controller is down (crashed).
    pub machine: Option<Deployment>,
    /// The serialised state a crash left behind.
    pub persisted: Option<String>,
    pub incarnation: u32,
    pub(crate) wake: Option<Timestamp>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub outcome: Option<PhaseName>,
    pub reason: Option<ReasonKind>,
    pub aws_calls: u64,
    pub commands: u64,
    pub plan_calls_min: u64,
    pub crashes: u32,
    pub detection_ms: u64,
    pub(crate) liveness_deadline: Option<Timestamp>,
    pub(crate) liveness_reported: bool,
    pub journal: Option<Recorder>,
    /// When CloudWatch first found an alarm this deployment watches in ALARM while it
    /// watched alarms (the alarm → blue measurement starts here).
    pub alarm_fired_at: Option<Timestamp>,
    /// From `alarm_fired_at` to the rollback's listener write reaching the world.
    pub alarm_to_blue_ms: Option<u64>,
    /// An accepted alarm event whose rollback command has not gone out yet.
    pub(crate) alarm_event_at: Option<Timestamp>,
    /// Time this deployment's commands waited for the client's API budget, in all and
    /// while rolling back; commands that waited at all.
    pub budget_wait_ms: u64,
    pub rollback_budget_wait_ms: u64,
    pub budget_waits: u32,
    /// Commands the budget held past `budget_hold_ms_max` and answered unsent.
    pub budget_refused: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct AppState {
    pub next_push: usize,
    /// The app's queue rules: the same value the service keeps per app (deployments are
    /// named by push index here until they start).
    pub admission: Admission<u16>,
    /// The first push admitted per image (a later push of it is a repeat).
    pub admitted_images: BTreeMap<String, u16>,
    /// A push the admission started, waiting for its `Start` event.
    pub starting: Option<u16>,
    pub superseded: u32,
    pub current: Option<u32>,
    pub started: u32,
    /// The plan's lower bound of AWS calls per artifact kind (image, task definition).
    pub plan: [Option<u64>; 2],
}

#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub dep: u32,
    pub incarnation: u32,
    pub command: std::sync::Arc<bluegreen_core::Command>,
    pub verdict: crate::faults::Verdict,
    pub order: u64,
    pub result: Option<Result<CommandResult, bluegreen_core::CommandError>>,
    /// Held by the API budget since then, for this role.
    pub gated: Option<(Timestamp, bluegreen_core::budget::Role)>,
}

/// A simulation run: the world, the deployments, the auditor and the event heap.
pub struct Sim {
    pub world: World,
    pub auditor: Auditor,
    pub trace: Trace,
    pub scenario: Scenario,
    pub deps: Vec<Dep>,
    pub(crate) apps: Vec<AppState>,
    now: Timestamp,
    seq: u64,
    /// Numbers the machine's outputs (orders commands against transitions).
    order: u64,
    queue: EventQueue,
    pub(crate) pending: Vec<Option<Pending>>,
    free_slots: Vec<u32>,
    pub(crate) rng: Rng,
    /// Late re-deliveries of pushes (a stream of its own: other draws keep their meaning).
    pub(crate) late_rng: Rng,
    pub(crate) stale: BTreeMap<u64, (Timestamp, CommandResult)>,
    pub(crate) stale_on: bool,
    pub(crate) healed: bool,
    pub heal_at: Timestamp,
    pub events: u64,
    pub(crate) options: SimOptions,
    /// One-shot: crash deployment `.0` instead of delivering its next answer to a
    /// command whose id contains `.1` (scenario tests).
    pub(crate) crash_trigger: Option<(u32, String)>,
    stopped_early: bool,
    pub superseded: u32,
    /// Every world change by a deployment, when `SimOptions::record_writes` is on.
    pub writes: Vec<WriteRecord>,
    /// Deployments started and not finished; pushes not yet arrived.
    pub(crate) unfinished: u32,
    pub(crate) pushes_left: u32,
    /// Alarm events: the state each evaluated alarm was last seen in (`None`: nobody
    /// watches it, no evaluation is scheduled), a stream of draws of their own, counts.
    pub(crate) alarm_loops: Vec<Option<bluegreen_core::AlarmState>>,
    pub(crate) event_rng: Rng,
    pub alarm_events_delivered: u64,
    pub alarm_events_lost: u64,
    pub alarm_events_acted: u64,
    /// The service's own API budget for the account (`Scenario::budget`).
    pub budget: Option<bluegreen_core::budget::Budget>,
    /// Commands waiting for the budget (pending slots), rollbacks first.
    pub(crate) budget_queue: std::collections::VecDeque<u32>,
    pub(crate) budget_scan_at: Option<Timestamp>,
}

impl Sim {
    pub fn new(scenario: Scenario, options: SimOptions) -> Sim {
        let drafts: Vec<_> = scenario.apps.iter().map(|a| a.draft.clone()).collect();
        let mut world = World::seeded(&drafts, &scenario.world, scenario.seed, scenario.start);
        world.faults = scenario.world_faults.clone();
        for app in &scenario.apps {
            for (name, b) in &app.hooks {
                world.hooks.set(name, *b);
            }
        }
        let start = scenario.start;
        let mut auditor = Auditor::new();
        auditor.keep_notes = options.trace_text || options.echo;
        let stale_on = scenario.rules.stale_max_ms() > 0;
        let mut sim = Sim {
            world,
            auditor,
            trace: Trace::new(options.trace_text, options.echo, start),
            deps: Vec::new(),
            apps: vec![AppState::default(); scenario.apps.len()],
            now: start,
            seq: 0,
            order: 0,
            queue: EventQueue::default(),
            pending: Vec::new(),
            free_slots: Vec::new(),
            rng: Rng::derive(scenario.seed, 0x4a72),
            late_rng: Rng::derive(scenario.seed, 0x1a7e),
            stale: BTreeMap::new(),
            stale_on,
            healed: false,
            heal_at: start.plus_ms(scenario.safety_ms),
            events: 0,
            options,
            crash_trigger: None,
            stopped_early: false,
            superseded: 0,
            writes: Vec::new(),
            unfinished: 0,
            pushes_left: scenario.apps.iter().map(|a| a.pushes.len() as u32).sum(),
            alarm_loops: Vec::new(),
            event_rng: Rng::derive(scenario.seed, 0xe7e5),
            alarm_events_delivered: 0,
            alarm_events_lost: 0,
            alarm_events_acted: 0,
            budget: scenario.budget.map(|shape| {
                bluegreen_core::budget::Budget::new(scenario.world.limits.rates(), shape, start)
            }),
            budget_queue: std::collections::VecDeque::new(),
            budget_scan_at: None,
            scenario,
        };
        let firsts: Vec<(usize, u64)> = sim
            .scenario
            .apps
            .iter()
            .enumerate()
            .filter_map(|(a, app)| app.pushes.first().map(|p| (a, p.at_ms)))
            .collect();
        for (a, at_ms) in firsts {
            sim.queue_push(
                start.plus_ms(at_ms),
                Ev::Push {
                    app: a as u16,
                    push: 0,
                },
            );
        }
        if sim.scenario.safety_ms > 0 {
            sim.world.start_faults();
            sim.queue_push(sim.heal_at, Ev::Heal);
        } else {
            sim.healed = true;
            sim.scenario.rules.enabled = false;
        }
        sim
    }

    /// Draw the scenario for `seed` under `profile` and run it to the end.
    pub fn run_seed(seed: u64, profile: Profile, options: SimOptions) -> RunReport {
        Sim::new(Scenario::draw(seed, profile), options).run()
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub(crate) fn queue_push(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(at.max(self.now), self.seq, ev);
    }

    /// The deployment with this id.
    pub fn dep_ix(&self, id: &str) -> Option<u32> {
        self.deps
            .iter()
            .position(|d| d.id.as_str() == id)
            .map(|i| i as u32)
    }

    /// Phase of a deployment (`None` while its controller is down).
    pub fn phase_of(&self, dep: u32) -> Option<PhaseName> {
        self.deps
            .get(dep as usize)?
            .machine
            .as_ref()
            .map(|m| m.phase_name())
    }

    /// Crash the controller of `dep` instead of delivering its next answer to a command
    /// whose id contains `step` — after the world applied it, before it was persisted.
    pub fn crash_on_answer_to(&mut self, dep: u32, step: &str) {
        self.crash_trigger = Some((dep, step.to_string()));
    }

    /// An operator request now (through the machine's own guard).
    pub fn operator(&mut self, dep: u32, req: OperatorRequest) {
        let code = match req {
            OperatorRequest::Promote => 0,
            OperatorRequest::Pause => 1,
            OperatorRequest::Resume => 2,
            OperatorRequest::Abort { .. } => 3,
        };
        self.queue_push(self.now, Ev::Operator { dep, req: code });
    }

    /// Every push handled and every deployment finished: nothing left to watch.
    pub fn all_done(&self) -> bool {
        // Asked before every event: a deployment still running answers at once.
        if self.unfinished > 0 {
            debug_assert!(self.deps.iter().any(|d| d.outcome.is_none()));
            return false;
        }
        self.apps.iter().zip(&self.scenario.apps).all(|(a, plan)| {
            // A held app (a deployment failed) starts nothing more until an operator.
            let held = a.admission.hold().is_some();
            a.current.is_none()
                && a.starting.is_none()
                && (a.admission.queued().is_none() || held)
                && (a.next_push >= plan.pushes.len() || held)
        }) && self.deps.iter().all(|d| d.outcome.is_some())
    }

    /// Process one event. `false` when the run is over.
    pub fn step(&mut self) -> bool {
        if self.stopped_early || self.events >= EVENTS_MAX || self.all_done() {
            return false;
        }
        let Some(Queued { at, ev, .. }) = self.queue.pop() else {
            return false;
        };
        if at.ms_since(self.scenario.start) > RUN_MS_MAX {
            self.liveness_violation(
                None,
                format!(
                    "the run passed {} days of virtual time",
                    RUN_MS_MAX / 86_400_000
                ),
            );
            self.stopped_early = true;
            return false;
        }
        self.events += 1;
        self.now = self.now.max(at);
        self.world.advance_to(self.now, &mut self.auditor);
        self.handle_event(ev);
        self.after_event();
        if self.events >= EVENTS_MAX {
            self.liveness_violation(
                None,
                format!("the run used its {EVENTS_MAX} events without finishing"),
            );
        }
        true
    }

    /// Step until `pred` holds (true) or the run is over (false).
    pub fn run_until(&mut self, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            if pred(self) {
                return true;
            }
            if !self.step() {
                return pred(self);
            }
        }
    }

    /// Run to the end: the liveness phase, the final audit, the report.
    pub fn run(mut self) -> RunReport {
        while self.step() {}
        let settle = self.world.profile().listener_visible_max_ms() + 1;
        self.now = self.now.plus_ms(settle);
        self.world.advance_to(self.now, &mut self.auditor);
        if !self.stopped_early {
            for d in 0..self.deps.len() {
                if self.deps[d].outcome.is_none() {
                    self.liveness_violation(
                        Some(d as u32),
                        "the run ended with the deployment unfinished".into(),
                    );
                }
            }
        }
        self.auditor.final_check(&self.world);
        RunReport::build(self)
    }

    fn handle_event(&mut self, ev: Ev) {
        match ev {
            Ev::Push { app, push } => self.on_push(app, push),
            Ev::Start { app } => {
                let a = &mut self.apps[app as usize];
                if a.current.is_none()
                    && let Some(p) = a.starting.take()
                {
                    self.start(app, p);
                }
            }
            Ev::Wake { dep } => {
                let d = &mut self.deps[dep as usize];
                if d.machine.is_some() && d.wake == Some(self.now) {
                    d.wake = None;
                    self.turn(dep, bluegreen_core::Input::Wake);
                }
            }
            Ev::Arrive { slot } => self.arrive(slot),
            Ev::Respond { slot } => self.respond(slot),
            Ev::Gate { slot } => self.gate(slot),
            Ev::BudgetScan { at } => self.budget_scan(at),
            Ev::Operator { dep, req } => self.on_operator(dep, req),
            Ev::Crash { dep } => self.on_crash_event(dep),
            Ev::Restart { dep } => self.restart(dep),
            Ev::Heal => self.heal(),
            Ev::Audit => self.audit_deadlines(),
            Ev::AlarmEval { alarm } => self.on_alarm_eval(alarm),
            Ev::AlarmDeliver {
                alarm,
                state,
                changed,
            } => self.on_alarm_deliver(alarm, state, changed),
        }
    }

    fn after_event(&mut self) {
        for note in std::mem::take(&mut self.auditor.notes) {
            self.trace.line(self.now, || note);
        }
        for t in std::mem::take(&mut self.auditor.deadlines) {
            self.queue_push(t, Ev::Audit);
        }
    }

    /// Dark episodes and liveness bounds that may have run out (an `Audit` event is
    /// queued at every such deadline).
    fn audit_deadlines(&mut self) {
        self.auditor.check_deadlines(&self.world);
        if self.healed {
            for d in 0..self.deps.len() {
                let dep = &self.deps[d];
                if dep.outcome.is_none()
                    && !dep.liveness_reported
                    && dep.liveness_deadline.is_some_and(|t| t <= self.now)
                {
                    let bound = dep
                        .liveness_deadline
                        .expect("checked")
                        .ms_since(self.heal_at.max(dep.started_at));
                    self.deps[d].liveness_reported = true;
                    self.liveness_violation(
                        Some(d as u32),
                        format!(
                            "not finished within {} s of the liveness phase (bound)",
                            bound / 1000
                        ),
                    );
                }
            }
        }
    }

    pub(crate) fn liveness_violation(&mut self, dep: Option<u32>, detail: String) {
        let app = dep.map(|d| self.deps[d as usize].app).unwrap_or(0);
        self.auditor
            .violation(&self.world, self.now, Invariant::Liveness, app, dep, detail);
        self.stopped_early = true;
    }

    /// How long a dark episode may last before this deployment must have rolled back:
    /// the next poll, then — for the observation, a hook call blocking the monitor, and
    /// the rollback write — a normal round trip each plus, per injected fault allowed
    /// in a row, a full command timeout and two maximal retry delays; then the listener
    /// change reaching traffic, stale reads, and controller restarts.
    pub fn detection_bound_ms(&self, spec: &DeploymentSpec) -> u64 {
        let s = &self.scenario;
        let rtt = 2 * s.latency_ms.hi + s.rules.latency_max_ms();
        let faulted = s.rules.rules.is_empty() as u64 ^ 1;
        let streak = u64::from(s.rules.streak_max) * faulted;
        let retry = 2 * spec.pacing.retry_max_ms;
        let per_command = rtt + streak * (spec.timeouts.command_ms + retry + rtt);
        let hooks = if spec.hooks.is_empty() {
            0
        } else {
            // A hook may hang (or be unreachable) a few times before it answers.
            3 * (spec.timeouts.command_ms + retry)
        };
        let storm = if s.profile == Profile::Storm {
            u64::from(spec.pacing.attempts_max) * retry
        } else {
            0
        };
        let crashes = if s.crash.enabled() {
            2 * s.crash.restart_ms.hi + spec.timeouts.command_ms
        } else {
            0
        };
        spec.pacing.poll_interval_ms * 11 / 10
            + self.world.alarm_eval_ms()
            + 3 * per_command
            + hooks
            + storm
            + crashes
            + s.world.listener_visible_max_ms()
            + streak * s.rules.stale_max_ms()
            + 5_000
    }

    /// How old the freshest look at green can be when a write lands: the look's answer
    /// and the write each cross the network once, either may be delayed by an injected
    /// latency, and the look may come from a lagging replica.
    pub fn look_grace_ms(&self) -> u64 {
        let s = &self.scenario;
        2 * s.latency_ms.hi + 2 * s.rules.latency_max_ms() + s.rules.stale_max_ms() + 1
    }

    /// The liveness bound of a deployment from the moment faults stop (or it starts):
    /// every phase's deadline in turn (what `Plan::worst_case_ms` sums), the rollback's
    /// (`Plan::rollback_worst_case_ms`), and slack for retries and the world's own pace.
    pub fn liveness_bound_ms(spec: &DeploymentSpec) -> u64 {
        let t = &spec.timeouts;
        let hooks: u64 = spec.hooks.iter().map(|h| h.deadline_ms).sum();
        let shift: u64 = spec
            .strategy
            .steps()
            .iter()
            .map(|s| t.health_ms + s.hold_ms)
            .sum();
        let forward = t.deploy_ms
            + t.health_ms
            + spec.test_traffic_ms
            + spec.approval_timeout_ms.unwrap_or(0)
            + shift
            + spec.bake_ms
            + spec.drain_ms
            + t.scale_down_ms;
        let rollback = 2 * t.command_ms + t.scale_down_ms;
        // A pause ends by the approval timeout at the latest.
        let pause = t.approval_ms;
        let retries = u64::from(spec.pacing.attempts_max) * 2 * spec.pacing.retry_max_ms;
        forward + rollback + hooks + pause + 10 * t.command_ms + 4 * retries + 600_000
    }
}
