//! An ideal cloud: answers every command the way a healthy AWS account would, at once.
//! Tasks start instantly, every target is healthy, no alarm fires, every hook passes.
//!
//! It exists so the machine can be *dry-run*: plans count AWS calls by running the real
//! machine against it (so the count cannot drift from the machine's logic), the crate
//! docs drive a deployment by hand with it, and benches measure the machine alone. For
//! faults, delays and crashes use `bluegreen-sim`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::command::{
    AlarmObservation, AlarmState, AlarmStates, Command, CommandError, CommandKind, CommandResult,
    EnsureGreen, HookVerdict, ListenerState, MetricData, Observation, Observe, ServiceStatus,
    TargetHealth, TargetWeight, TaskSetStatus,
};
use crate::io::{Input, OperatorRequest, Output, PhaseName};
use crate::machine::{Deployment, Phase};
use crate::name::Name;
use crate::spec::{DeploymentSpec, EnvironmentModel, ListenerRef};
use crate::time::Timestamp;

/// Size of the live environment in the ideal world.
pub const IDEAL_BLUE_TASKS: u32 = 3;

#[derive(Clone, Debug)]
struct Service {
    desired: u32,
    task_definition: Name,
    target_groups: Arc<[Name]>,
    task_sets: Vec<TaskSetStatus>,
}

/// The ideal world for one spec: slot 0 live at 100 %, slot 1 idle.
#[derive(Clone, Debug)]
pub struct IdealCloud {
    target_groups: [Name; 2],
    listeners: BTreeMap<ListenerRef, Vec<TargetWeight>>,
    production: ListenerRef,
    services: BTreeMap<Name, Service>,
    registered: BTreeMap<(Name, Name), Name>,
    revisions: u32,
    /// Sum of `aws_calls_min` over every command answered.
    pub aws_calls: u64,
    pub commands: u64,
    /// `ACTIVE`, shared by every service status it answers (no text made per answer).
    active: Name,
    /// The reason every alarm read gives (one text, shared by every answer).
    alarm_reason: Name,
}

fn family(app: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{app}")
}

impl IdealCloud {
    pub fn new(spec: &DeploymentSpec) -> Self {
        let tgs = spec.target_groups.clone();
        let td = format!("{}:1", family(&spec.app));
        let all_to_slot0 = vec![TargetWeight {
            target_group: tgs[0].clone(),
            weight: 1,
        }];
        let mut listeners = BTreeMap::new();
        listeners.insert(spec.listener.clone(), all_to_slot0.clone());
        if let Some(test) = &spec.test_listener {
            listeners.insert(test.clone(), all_to_slot0);
        }
        let mut services = BTreeMap::new();
        match &spec.environment {
            EnvironmentModel::ServicePair { services: names } => {
                for (slot, name) in names.iter().enumerate() {
                    services.insert(
                        name.clone(),
                        Service {
                            desired: if slot == 0 { IDEAL_BLUE_TASKS } else { 0 },
                            task_definition: td.clone().into(),
                            target_groups: Arc::from([tgs[slot].clone()]),
                            task_sets: vec![],
                        },
                    );
                }
            }
            EnvironmentModel::TaskSet { service } => {
                services.insert(
                    service.clone(),
                    Service {
                        desired: IDEAL_BLUE_TASKS,
                        task_definition: Name::default(),
                        target_groups: Arc::from([]),
                        task_sets: vec![task_set("ts-blue", "initial", &td, &tgs[0], "PRIMARY")],
                    },
                );
            }
        }
        IdealCloud {
            target_groups: tgs,
            listeners,
            production: spec.listener.clone(),
            services,
            registered: BTreeMap::new(),
            revisions: 1,
            aws_calls: 0,
            commands: 0,
            active: Name::from("ACTIVE"),
            alarm_reason: Name::from("ideal"),
        }
    }

    /// Production weights as (slot 0, slot 1) — slot 0 starts live.
    pub fn weights_of_listener(&self) -> (u32, u32) {
        let f = &self.listeners[&self.production];
        let w = |tg: &str| {
            f.iter()
                .filter(|t| t.target_group == tg)
                .map(|t| t.weight)
                .sum()
        };
        (w(&self.target_groups[0]), w(&self.target_groups[1]))
    }

    /// A service's desired count and task definition (service-pair model), as the ideal
    /// world holds them now.
    pub fn service_state(&self, name: &str) -> Option<(u32, &str)> {
        self.services
            .get(name)
            .map(|s| (s.desired, s.task_definition.as_str()))
    }

    /// Tasks the environment behind a target group runs.
    pub fn tasks_behind(&self, target_group: &str) -> u32 {
        self.services
            .values()
            .map(|s| {
                if s.target_groups.iter().any(|t| t == target_group) {
                    s.desired
                } else {
                    s.task_sets
                        .iter()
                        .filter(|ts| ts.target_groups.iter().any(|t| t == target_group))
                        .map(|ts| ts.running_count)
                        .sum()
                }
            })
            .sum()
    }

    fn status(&self, name: &Name) -> Result<ServiceStatus, CommandError> {
        let (service, s) = self.services.get_key_value(name).ok_or_else(|| {
            CommandError::fatal(
                "ServiceNotFoundException",
                format!("service {name} not found"),
            )
        })?;
        Ok(ServiceStatus {
            service: service.clone(),
            status: self.active.clone(),
            desired_count: s.desired,
            running_count: if s.task_sets.is_empty() {
                s.desired
            } else {
                s.task_sets.iter().map(|t| t.running_count).sum()
            },
            pending_count: 0,
            task_definition: s.task_definition.clone(),
            target_groups: s.target_groups.clone(),
            task_sets: s.task_sets.clone(),
            failed_tasks: 0,
            also: None,
        })
    }

    fn adopt_service(&mut self, service: &Name, status: &ServiceStatus) {
        self.revisions = self
            .revisions
            .max(revision_of(&status.task_definition))
            .max(
                status
                    .task_sets
                    .iter()
                    .map(|t| revision_of(&t.task_definition))
                    .max()
                    .unwrap_or(0),
            );
        self.services.insert(
            service.clone(),
            Service {
                desired: status.desired_count,
                task_definition: status.task_definition.clone(),
                target_groups: status.target_groups.clone(),
                task_sets: status.task_sets.clone(),
            },
        );
    }

    /// Take in what a real cloud answered to a read, so the ideal world continues from
    /// the real one (`bluegreen plan --live`: reads go to AWS until the first write, then
    /// the dry run goes on here): listener weights, services (desired counts, task
    /// definitions, task sets) and task-definition revisions already registered.
    pub fn adopt(&mut self, command: &Command, result: &CommandResult) {
        match (&command.kind, result) {
            (
                CommandKind::Observe(Observe::Listener(l)),
                CommandResult::Observed(Observation::Listener(state)),
            ) => {
                self.listeners.insert(l.clone(), state.forwards.clone());
            }
            (
                CommandKind::Observe(Observe::Service { service, .. }),
                CommandResult::Observed(Observation::Service(status)),
            ) => {
                self.adopt_service(service, status);
                if let Some(also) = &status.also {
                    self.adopt_service(&also.service, also);
                }
            }
            (
                CommandKind::FindTaskDefinition { base, image, .. },
                CommandResult::TaskDefinitionFound { arn: Some(arn) },
            ) => {
                self.revisions = self.revisions.max(revision_of(arn));
                self.registered
                    .insert((base.clone(), image.clone()), arn.clone());
            }
            (CommandKind::FindTaskDefinition { base, .. }, _) => {
                self.revisions = self.revisions.max(revision_of(base));
            }
            _ => {}
        }
    }

    /// Answer one command.
    pub fn respond(&mut self, command: &Command) -> Result<CommandResult, CommandError> {
        self.commands += 1;
        self.aws_calls += u64::from(command.kind.aws_calls_min());
        Ok(match &command.kind {
            CommandKind::Preflight(_) => CommandResult::PreflightPassed,
            CommandKind::FindTaskDefinition { base, image, .. } => {
                let base_runs_image = self
                    .registered
                    .iter()
                    .any(|((_, i), arn)| arn == base && i == image);
                CommandResult::TaskDefinitionFound {
                    arn: if base_runs_image {
                        Some(base.clone())
                    } else {
                        self.registered.get(&(base.clone(), image.clone())).cloned()
                    },
                }
            }
            CommandKind::RegisterTaskDefinition { base, image, .. } => {
                let key = (base.clone(), image.clone());
                let arn = match self.registered.get(&key) {
                    Some(arn) => arn.clone(),
                    None => {
                        self.revisions += 1;
                        let fam = base.rsplit_once(':').map(|(f, _)| f).unwrap_or(base);
                        let arn = Name::from(format!("{fam}:{}", self.revisions));
                        self.registered.insert(key, arn.clone());
                        arn
                    }
                };
                CommandResult::TaskDefinitionRegistered { arn }
            }
            CommandKind::EnsureGreen(EnsureGreen::Service {
                service,
                task_definition,
                desired_count,
                ..
            }) => {
                let s = self.services.get_mut(service).ok_or_else(|| {
                    CommandError::fatal("ServiceNotFoundException", service.clone())
                })?;
                s.task_definition = task_definition.clone();
                s.desired = *desired_count;
                CommandResult::GreenEnsured { task_set: None }
            }
            CommandKind::EnsureGreen(EnsureGreen::TaskSet {
                service,
                task_definition,
                target_group,
                external_id,
                ..
            }) => {
                let s = self.services.get_mut(service).ok_or_else(|| {
                    CommandError::fatal("ServiceNotFoundException", service.clone())
                })?;
                let existing = s
                    .task_sets
                    .iter()
                    .find(|t| t.external_id.as_deref() == Some(external_id));
                let arn = match existing {
                    Some(t) => t.arn.clone(),
                    None => {
                        let mut t = task_set(
                            &format!("ts-{}", s.task_sets.len() + 1),
                            external_id,
                            task_definition,
                            target_group,
                            "ACTIVE",
                        );
                        t.computed_desired_count = s.desired;
                        t.running_count = s.desired;
                        let arn = t.arn.clone();
                        s.task_sets.push(t);
                        arn
                    }
                };
                CommandResult::GreenEnsured {
                    task_set: Some(arn),
                }
            }
            CommandKind::ScaleEnvironment {
                service,
                desired_count,
                ..
            } => {
                let s = self.services.get_mut(service).ok_or_else(|| {
                    CommandError::fatal("ServiceNotFoundException", service.clone())
                })?;
                s.desired = *desired_count;
                CommandResult::Scaled
            }
            CommandKind::DeleteEnvironment {
                service, task_set, ..
            } => {
                if let Some(s) = self.services.get_mut(service) {
                    s.task_sets.retain(|t| &t.arn != task_set);
                }
                CommandResult::Deleted
            }
            CommandKind::SetListenerWeights { listener, weights } => {
                self.listeners.insert(listener.clone(), weights.clone());
                CommandResult::WeightsSet(ListenerState {
                    forwards: weights.clone(),
                })
            }
            CommandKind::SetPrimaryTaskSet {
                service, task_set, ..
            } => {
                if let Some(s) = self.services.get_mut(service) {
                    for t in &mut s.task_sets {
                        t.status = if &t.arn == task_set {
                            "PRIMARY"
                        } else {
                            "ACTIVE"
                        }
                        .into();
                    }
                }
                CommandResult::PrimarySet
            }
            CommandKind::TagSlots { .. } => CommandResult::Tagged,
            CommandKind::PlaceScaling { .. } => CommandResult::ScalingPlaced { moved: false },
            CommandKind::Observe(Observe::Listener(l)) => {
                CommandResult::Observed(Observation::Listener(ListenerState {
                    forwards: self.listeners.get(l).cloned().unwrap_or_default(),
                }))
            }
            CommandKind::Observe(Observe::Service { service, also, .. }) => {
                let mut status = self.status(service)?;
                if let Some(also) = also {
                    status.also = Some(Box::new(self.status(also)?));
                }
                CommandResult::Observed(Observation::Service(Box::new(status)))
            }
            CommandKind::Observe(Observe::TargetHealth { target_group }) => {
                CommandResult::Observed(Observation::TargetHealth(TargetHealth {
                    healthy: self.tasks_behind(target_group),
                    ..TargetHealth::default()
                }))
            }
            CommandKind::Observe(Observe::Alarms { names }) => {
                CommandResult::Observed(Observation::Alarms(AlarmStates {
                    alarms: names
                        .iter()
                        .map(|n| AlarmObservation {
                            name: n.clone(),
                            state: AlarmState::Ok,
                            reason: self.alarm_reason.clone(),
                        })
                        .collect(),
                    missing: vec![],
                }))
            }
            CommandKind::Observe(Observe::Metrics(_)) => {
                CommandResult::Observed(Observation::Metrics(MetricData::default()))
            }
            CommandKind::CallHook(_) => CommandResult::Hook(HookVerdict::Pass),
        })
    }
}

/// The revision number of a task definition ARN or `family:rev` (0 when it has none).
fn revision_of(task_definition: &str) -> u32 {
    crate::arn::family_and_revision(task_definition)
        .1
        .unwrap_or(0)
}

fn task_set(id: &str, external_id: &str, td: &str, tg: &str, status: &str) -> TaskSetStatus {
    TaskSetStatus {
        id: Name::from(id),
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task-set/cluster/service/{id}").into(),
        status: Name::from(status),
        external_id: Some(Name::from(external_id)),
        task_definition: Name::from(td),
        target_groups: Arc::from([Name::from(tg)]),
        computed_desired_count: IDEAL_BLUE_TASKS,
        running_count: IDEAL_BLUE_TASKS,
        pending_count: 0,
        stability_status: "STEADY_STATE".into(),
    }
}

/// What a drive measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drive {
    pub finished_at: Timestamp,
    /// handle + poll calls made.
    pub steps: u64,
}

/// Run `d` to a terminal phase against `cloud` in virtual time, answering every command
/// at once; promote at an approval gate when `auto_promote`. `observe` sees every output
/// with the phase the machine was in when it produced it. Bounded by `steps_max`.
pub fn drive(
    d: &mut Deployment,
    cloud: &mut IdealCloud,
    start: Timestamp,
    auto_promote: bool,
    steps_max: u64,
    mut observe: impl FnMut(&Phase, &Output, Timestamp),
) -> Drive {
    let mut now = start;
    let mut steps = 0;
    let mut inbox = vec![Input::Wake];
    while steps < steps_max {
        for input in inbox.drain(..) {
            let _ = d.handle(now, input);
            steps += 1;
        }
        if auto_promote && d.phase_name() == PhaseName::Approval {
            let _ = d.handle(now, Input::Operator(OperatorRequest::Promote));
        }
        let wake_at;
        loop {
            let out = d.poll(now);
            steps += 1;
            observe(d.phase(), &out, now);
            match out {
                Output::Command(cmd) => {
                    let result = cloud.respond(&cmd);
                    inbox.push(Input::CommandDone {
                        id: cmd.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at: w } => {
                    wake_at = w;
                    break;
                }
            }
        }
        if inbox.is_empty() {
            match wake_at {
                Some(t) => {
                    now = t;
                    inbox.push(Input::Wake);
                }
                None if d.phase_name() == PhaseName::Approval && auto_promote => {}
                None => break,
            }
        }
    }
    Drive {
        finished_at: now,
        steps,
    }
}
