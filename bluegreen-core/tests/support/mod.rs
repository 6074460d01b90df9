//! Test support: a scriptable world (the ideal cloud plus knobs) and a driver that records
//! every output with the phase it came from. Shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use bluegreen_core::plan::{IdealCloud, example_draft};
use bluegreen_core::*;

pub const START: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// An injected answer for commands of one kind name (see `CommandKind::name`).
#[derive(Clone, Debug)]
pub enum Fault {
    Error(CommandError),
    /// Apply the command in the world, then report this error (a lost response).
    AppliedThen(CommandError),
    /// Answer normally: lets the fault queued after it hit the next command of the kind.
    Pass,
}

/// The world the machine talks to in tests.
pub struct World {
    pub ideal: IdealCloud,
    pub spec: DeploymentSpec,
    /// Override green's healthy target count (None: all tasks healthy).
    pub green_healthy: Option<u32>,
    pub green_unhealthy: u32,
    /// Applied last to green's target health (reasons, other states).
    pub edit_green_health: Option<fn(&mut TargetHealth)>,
    /// Override the running count green's service (or task set) reports.
    pub green_running: Option<u32>,
    /// Green's service keeps reporting this many running tasks whatever its desired
    /// count (tasks that will not stop).
    pub green_stuck: Option<u32>,
    /// Green's task set reports `STABILIZING` whatever its counts.
    pub green_stabilizing: bool,
    /// Blue's service keeps reporting at least these (running, pending) tasks: a
    /// scale-down that does not take.
    pub blue_left: Option<(u32, u32)>,
    /// The same for green's service (a rollback's scale-down that does not take).
    pub green_left: Option<(u32, u32)>,
    /// Blue's / green's service keeps reporting at least this desired count (a scale
    /// to zero that ECS never took, with no task left running).
    pub blue_keeps_desired: Option<u32>,
    pub green_keeps_desired: Option<u32>,
    pub failed_tasks: u32,
    /// Blue's service reports this desired count (an autoscaler scaled it; slot 0 is
    /// blue in the example spec).
    pub blue_desired: Option<u32>,
    pub alarms_in_alarm: Vec<Name>,
    pub missing_alarms: Vec<Name>,
    /// Metric series returned by id.
    pub metrics: BTreeMap<String, Vec<f64>>,
    /// Hook verdicts by hook name, consumed front first; empty → pass.
    pub hooks: BTreeMap<String, VecDeque<Result<HookVerdict, CommandError>>>,
    /// Faults by command kind name, consumed front first.
    pub faults: BTreeMap<&'static str, VecDeque<Fault>>,
    /// Task sets the ideal cloud does not hold (someone else made them, or a create it
    /// never saw), reported on every service that has task sets; deleting one removes it.
    pub extra_task_sets: Vec<TaskSetStatus>,
    /// Applied last to every service the world reports (a state the ideal cloud never
    /// reaches by itself: extra task sets, another status).
    pub edit_service: Option<fn(&mut ServiceStatus)>,
    /// Every command answered, in order.
    pub log: Vec<Command>,
    /// Commands applied by hand so far (names the next one).
    by_hand: u64,
}

impl World {
    pub fn new(spec: &DeploymentSpec) -> Self {
        World {
            ideal: IdealCloud::new(spec),
            spec: spec.clone(),
            green_healthy: None,
            green_unhealthy: 0,
            edit_green_health: None,
            green_running: None,
            green_stuck: None,
            failed_tasks: 0,
            blue_desired: None,
            alarms_in_alarm: vec![],
            blue_keeps_desired: None,
            green_keeps_desired: None,
            blue_left: None,
            green_left: None,
            green_stabilizing: false,
            missing_alarms: vec![],
            metrics: BTreeMap::new(),
            hooks: BTreeMap::new(),
            faults: BTreeMap::new(),
            extra_task_sets: vec![],
            edit_service: None,
            log: vec![],
            by_hand: 0,
        }
    }

    /// Apply `kind` to the world directly, as someone other than the machine would (a
    /// console click, another pipeline): the machine sees only its effect.
    pub fn by_hand(&mut self, kind: CommandKind) -> Result<CommandResult, CommandError> {
        self.by_hand += 1;
        let who = DeploymentId::new("by-hand").expect("a valid id");
        self.ideal.respond(&Command {
            id: CommandId::numbered(&who, "c", self.by_hand, ""),
            attempt: 1,
            kind,
        })
    }

    /// A task set on green's target group of service `web` (the task-set model),
    /// created by hand with `external_id`; its ARN.
    pub fn task_set_by_hand(&mut self, external_id: &str) -> Name {
        let made = self.by_hand(CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
            target_group: self.spec.target_groups[1].clone(),
            like_task_set: "blue".into(),
            external_id: external_id.into(),
        }));
        match made {
            Ok(CommandResult::GreenEnsured {
                task_set: Some(arn),
            }) => arn,
            other => panic!("a task set by hand: {other:?}"),
        }
    }

    pub fn fault(&mut self, kind: &'static str, f: Fault) {
        self.faults.entry(kind).or_default().push_back(f);
    }
    /// What this world's knobs make of a service read (green's, or blue's riding in it).
    fn shape_service(&self, s: &mut ServiceStatus, failures: bool) {
        if failures {
            s.failed_tasks = self.failed_tasks;
        }
        if let Some(n) = self.blue_desired
            && s.target_groups.contains(&self.spec.target_groups[0])
        {
            s.desired_count = n;
            s.running_count = n;
            s.pending_count = 0;
        }
        if let Some(n) = self.green_stuck
            && s.target_groups.contains(&self.spec.target_groups[1])
        {
            s.running_count = s.running_count.max(n);
        }
        if let Some(n) = self.green_running {
            let green_tg = &self.spec.target_groups[1];
            if s.target_groups.contains(green_tg) && s.desired_count > 0 {
                s.running_count = n.min(s.running_count);
                s.pending_count = s.desired_count - s.running_count;
            }
            for ts in &mut s.task_sets {
                if ts.target_groups.contains(green_tg) {
                    ts.running_count = n.min(ts.running_count);
                }
            }
        }
        for (slot, keeps) in [(0, self.blue_keeps_desired), (1, self.green_keeps_desired)] {
            if let Some(n) = keeps
                && s.target_groups.contains(&self.spec.target_groups[slot])
            {
                s.desired_count = s.desired_count.max(n);
            }
        }
        for (slot, left) in [(0, self.blue_left), (1, self.green_left)] {
            if let Some((running, pending)) = left
                && s.target_groups.contains(&self.spec.target_groups[slot])
            {
                s.running_count = s.running_count.max(running);
                s.pending_count = s.pending_count.max(pending);
            }
        }
        if self.green_stabilizing {
            let green_tg = &self.spec.target_groups[1];
            for ts in &mut s.task_sets {
                if ts.target_groups.contains(green_tg) {
                    ts.stability_status = "STABILIZING".into();
                }
            }
        }
        if !s.task_sets.is_empty() {
            s.task_sets.extend(self.extra_task_sets.iter().cloned());
        }
        if let Some(edit) = self.edit_service {
            edit(s);
        }
    }

    pub fn respond(&mut self, cmd: &Command) -> Result<CommandResult, CommandError> {
        self.log.push(cmd.clone());
        let fault = self
            .faults
            .get_mut(cmd.kind.name())
            .and_then(|q| q.pop_front());
        match fault {
            Some(Fault::Error(e)) => return Err(e),
            Some(Fault::AppliedThen(e)) => {
                let _ = self.ideal.respond(cmd);
                return Err(e);
            }
            Some(Fault::Pass) | None => {}
        }
        if let CommandKind::CallHook(call) = &cmd.kind {
            let verdict = self
                .hooks
                .get_mut(call.name.as_str())
                .and_then(|q| q.pop_front())
                .unwrap_or(Ok(HookVerdict::Pass));
            return verdict.map(CommandResult::Hook);
        }
        if let CommandKind::DeleteEnvironment { task_set, .. } = &cmd.kind {
            self.extra_task_sets.retain(|t| &t.arn != task_set);
        }
        let mut r = self.ideal.respond(cmd)?;
        match (&cmd.kind, &mut r) {
            (
                CommandKind::Observe(Observe::TargetHealth { target_group }),
                CommandResult::Observed(Observation::TargetHealth(h)),
            ) if self.is_green_tg(target_group) => {
                if let Some(n) = self.green_healthy {
                    h.healthy = n.min(h.healthy);
                }
                h.unhealthy = self.green_unhealthy;
                if let Some(edit) = self.edit_green_health {
                    edit(h);
                }
            }
            (
                CommandKind::Observe(Observe::Service { failures, .. }),
                CommandResult::Observed(Observation::Service(s)),
            ) => {
                self.shape_service(s, failures.is_some());
                if let Some(also) = &mut s.also {
                    self.shape_service(also, false);
                }
            }
            (_, CommandResult::Observed(Observation::Alarms(a))) => {
                for alarm in &mut a.alarms {
                    if self.alarms_in_alarm.contains(&alarm.name) {
                        alarm.state = AlarmState::Alarm;
                        alarm.reason = "threshold crossed".into();
                    }
                }
                a.alarms.retain(|x| !self.missing_alarms.contains(&x.name));
                a.missing = self.missing_alarms.clone();
            }
            (
                CommandKind::Observe(Observe::Metrics(req)),
                CommandResult::Observed(Observation::Metrics(m)),
            ) => {
                m.series = req
                    .queries
                    .iter()
                    .filter_map(|q| {
                        self.metrics.get(&q.id).map(|v| MetricSeries {
                            id: q.id.clone(),
                            values: v.clone(),
                        })
                    })
                    .collect();
            }
            _ => {}
        }
        Ok(r)
    }

    /// Green is whichever slot is not live at the start (slot 1 in the ideal world).
    pub fn is_green_tg(&self, tg: &str) -> bool {
        tg == self.spec.target_groups[1]
    }

    pub fn prod_weights(&self) -> (u32, u32) {
        self.ideal.weights_of_listener()
    }

    pub fn tasks(&self, slot: usize) -> u32 {
        self.ideal.tasks_behind(&self.spec.target_groups[slot])
    }
}

/// An output with when and in which phase it was produced.
#[derive(Clone, Debug)]
pub struct Rec {
    pub at: Timestamp,
    pub phase: PhaseName,
    pub out: Output,
}

/// Drives a deployment against a `World`, answering every command at once.
pub struct Run {
    pub d: Deployment,
    pub w: World,
    pub now: Timestamp,
    pub outs: Vec<Rec>,
    pub inbox: Vec<Input>,
    pub wake_at: Option<Timestamp>,
    pub steps: u64,
}

pub const STEPS_MAX: u64 = 2_000_000;
/// Outputs one drain may see before the machine must say it is idle: the outbox holds 64
/// and at most 8 commands fly, so a machine past this never stops talking (a bug, or a
/// mutant), and the test fails at once instead of hanging.
pub const POLLS_PER_DRAIN_MAX: u32 = 10_000;

impl Run {
    pub fn new(spec: DeploymentSpec) -> Self {
        let w = World::new(&spec);
        let d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec, START);
        Run {
            d,
            w,
            now: START,
            outs: vec![],
            inbox: vec![Input::Wake],
            wake_at: Some(START),
            steps: 0,
        }
    }

    pub fn example() -> Self {
        Self::new(spec(|_| {}))
    }

    /// One round: hand in the inbox, drain outputs, answer commands. Returns false when
    /// there is nothing left to do (terminal, or idle with no timer).
    pub fn round(&mut self) -> bool {
        if self.inbox.is_empty() {
            match self.wake_at {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.inbox.push(Input::Wake);
                }
                None => return false,
            }
        }
        for input in std::mem::take(&mut self.inbox) {
            let _ = self.d.handle(self.now, input);
            self.steps += 1;
        }
        for polls in 0.. {
            assert!(polls < POLLS_PER_DRAIN_MAX, "the machine never went idle");
            let out = self.d.poll(self.now);
            self.steps += 1;
            self.outs.push(Rec {
                at: self.now,
                phase: self.d.phase_name(),
                out: out.clone(),
            });
            match out {
                Output::Command(c) => {
                    let result = self.w.respond(&c);
                    self.inbox.push(Input::CommandDone {
                        id: c.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at } => {
                    self.wake_at = wake_at;
                    break;
                }
            }
        }
        !(self.d.is_terminal() && self.inbox.is_empty())
    }

    /// Run until `stop` holds (checked after every round) or nothing is left to do.
    pub fn until(&mut self, mut stop: impl FnMut(&Run) -> bool) -> &mut Self {
        while self.steps < STEPS_MAX {
            if stop(self) {
                return self;
            }
            if !self.round() {
                break;
            }
        }
        assert!(
            self.steps < STEPS_MAX,
            "no progress within {STEPS_MAX} steps"
        );
        self
    }

    pub fn until_phase(&mut self, p: PhaseName) -> &mut Self {
        self.until(|r| r.d.phase_name() == p);
        assert_eq!(
            self.d.phase_name(),
            p,
            "never reached {p}; history: {:#?}",
            self.d.history()
        );
        self
    }

    /// The deployment is in phase `p` (its history in the message when not).
    pub fn assert_phase(&self, p: PhaseName) {
        assert_eq!(self.d.phase_name(), p, "{:#?}", self.d.history());
    }

    pub fn finish(&mut self) -> &mut Self {
        self.until(|r| r.d.is_terminal())
    }

    pub fn operator(&mut self, req: OperatorRequest) -> Result<(), Refused> {
        let r = self.d.handle(self.now, Input::Operator(req));
        self.drain();
        r
    }

    /// Drain outputs after an out-of-band input.
    pub fn drain(&mut self) {
        for polls in 0.. {
            assert!(polls < POLLS_PER_DRAIN_MAX, "the machine never went idle");
            let out = self.d.poll(self.now);
            self.outs.push(Rec {
                at: self.now,
                phase: self.d.phase_name(),
                out: out.clone(),
            });
            match out {
                Output::Command(c) => {
                    let result = self.w.respond(&c);
                    self.inbox.push(Input::CommandDone {
                        id: c.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at } => {
                    self.wake_at = wake_at;
                    break;
                }
            }
        }
    }

    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.outs.iter().filter_map(|r| match &r.out {
            Output::Command(c) => Some(&**c),
            _ => None,
        })
    }

    /// Green percentages written to the production listener, in order.
    pub fn prod_green_writes(&self) -> Vec<u32> {
        let green = &self.d.spec().target_groups[1];
        self.commands()
            .filter_map(|c| match &c.kind {
                CommandKind::SetListenerWeights { listener, weights }
                    if listener == &self.d.spec().listener =>
                {
                    Some(
                        weights
                            .iter()
                            .filter(|w| &w.target_group == green)
                            .map(|w| w.weight)
                            .sum(),
                    )
                }
                _ => None,
            })
            .collect()
    }

    /// Commands sent after the deployment entered rollback, by kind name.
    pub fn rollback_commands(&self) -> Vec<&'static str> {
        self.outs
            .iter()
            .filter(|r| r.phase == PhaseName::Rollback)
            .filter_map(|r| match &r.out {
                Output::Command(c) => Some(c.kind.name()),
                _ => None,
            })
            .collect()
    }

    pub fn notices(&self) -> impl Iterator<Item = &Notice> {
        self.outs.iter().filter_map(|r| match &r.out {
            Output::Notice(n) => Some(n),
            _ => None,
        })
    }

    pub fn transitions(&self) -> Vec<(PhaseName, PhaseName)> {
        self.d.history().iter().map(|t| (t.from, t.to)).collect()
    }

    pub fn rolled_back_from(&self) -> Option<PhaseName> {
        self.d
            .history()
            .iter()
            .find(|t| t.to == PhaseName::Rollback)
            .map(|t| t.from)
    }
}

/// The example spec with a fast poll, modified by `f`.
pub fn spec(f: impl FnOnce(&mut SpecDraft)) -> DeploymentSpec {
    let mut d = example_draft();
    d.pacing.poll_interval_ms = 1_000;
    d.pacing.retry_min_ms = 100;
    d.pacing.retry_max_ms = 1_000;
    f(&mut d);
    DeploymentSpec::new(d).expect("valid test spec")
}

/// The task-set model: one service, `web`, whose task sets are blue and green.
pub fn task_set_model(d: &mut SpecDraft) {
    d.environment = EnvironmentModel::TaskSet {
        service: "web".into(),
    };
}

/// A spec that passes through every phase: test listener, all hook stages, approval,
/// metrics, alarms.
pub fn full_spec(f: impl FnOnce(&mut SpecDraft)) -> DeploymentSpec {
    spec(|d| {
        d.test_listener = Some(ListenerRef {
            listener_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/aaaaaaaaaaaaaaaa".into(),
            rule_arn: None,
        });
        d.test_traffic_ms = 5_000;
        d.approval_timeout_ms = Some(600_000);
        d.hooks = [
            ("ready", HookStage::GreenReady),
            ("test", HookStage::TestTraffic),
            ("before", HookStage::BeforeShift),
            ("after", HookStage::AfterShift),
            ("on-rollback", HookStage::Rollback),
        ]
        .into_iter()
        .map(|(name, stage)| HookSpec {
            name: name.into(),
            stage,
            url: format!("http://127.0.0.1:9/{name}").into(),
            timeout_ms: 1_000,
            deadline_ms: 30_000,
            interval_ms: 1_000,
        })
        .collect();
        d.metrics = vec![MetricCheck {
            name: "errors".into(),
            metric: MetricKind::ErrorRate5xx,
            max: Some(5.0),
            max_ratio_to_blue: Some(2.0),
            floor: 1.0,
            window_ms: 300_000,
        }];
        f(d)
    })
}

pub fn err(class: ErrorClass, code: &str) -> CommandError {
    CommandError::new(class, code, "injected")
}
