//! Core commands → the AWS calls the reference adapter makes, against the world. Each
//! command costs its calls from the token buckets; a throttled call before the write
//! leaves nothing applied (retryable), one after it leaves the write applied with its
//! answer lost (ambiguous) — exactly what an honest adapter must report.

use bluegreen_core::{
    Command, CommandError, CommandKind, CommandResult, EnsureGreen, ListenerRef, Name, Observation,
    Observe, Preflight, TargetWeight,
};

use super::api::{ApiCall, err};
use super::elbv2::{FORWARD_TARGETS_MAX, Forward, WEIGHT_MAX};
use super::hooks::HookOutcome;
use super::{ACCOUNT, Env, REGION, World, short_name};

/// A change one command made, for the auditor (it judges writes as they apply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteEffect {
    Forward {
        forward: u32,
        before: Vec<(u32, u32)>,
        after: Vec<(u32, u32)>,
    },
    Service {
        service: u32,
        desired_before: u32,
        desired_after: u32,
        td_before: Option<u32>,
        td_after: Option<u32>,
    },
    TaskSetCreated {
        task_set: u32,
    },
    TaskSetDeleted {
        task_set: u32,
    },
    PrimarySet {
        service: u32,
        task_set: u32,
    },
    Registered {
        td: u32,
    },
}

type Res = Result<CommandResult, CommandError>;

impl World {
    /// Perform one command at the current time (advance the world first).
    pub fn execute(&mut self, command: &Command) -> Res {
        self.effects.clear();
        self.api.last_calls = 0;
        match &command.kind {
            CommandKind::Preflight(p) => self.preflight(p),
            CommandKind::FindTaskDefinition {
                base,
                container,
                image,
            } => self.find_task_definition(base, container, image),
            CommandKind::RegisterTaskDefinition {
                base,
                container,
                image,
            } => self.register_task_definition(base, container, image),
            CommandKind::EnsureGreen(e) => self.ensure_green(e, &command.id.client_token()),
            CommandKind::ScaleEnvironment {
                cluster,
                service,
                desired_count,
            } => {
                let s = self.lookup_service(cluster, service)?;
                self.call(ApiCall::UpdateService)?;
                self.apply_update(s, None, Some(*desired_count));
                Ok(CommandResult::Scaled)
            }
            CommandKind::DeleteEnvironment {
                cluster,
                service,
                task_set,
            } => self.delete_environment(cluster, service, task_set),
            CommandKind::SetListenerWeights { listener, weights } => {
                self.set_listener_weights(listener, weights)
            }
            CommandKind::SetPrimaryTaskSet {
                cluster,
                service,
                task_set,
            } => {
                let s = self.lookup_service(cluster, service)?;
                let ts = self.lookup_task_set(s, task_set)?;
                if self.ecs.task_sets[ts as usize].state == super::TaskSetState::Draining {
                    return Err(err::fatal(
                        "InvalidParameterException",
                        format!("task set {task_set} is being deleted and cannot become primary"),
                    ));
                }
                self.call(ApiCall::UpdateServicePrimaryTaskSet)?;
                self.set_primary(s, ts);
                self.effects.push(WriteEffect::PrimarySet {
                    service: s,
                    task_set: ts,
                });
                Ok(CommandResult::PrimarySet)
            }
            CommandKind::TagSlots {
                target_groups,
                live_slot,
                deployment,
                outcome,
            } => {
                let tgs = [
                    self.lookup_tg(&target_groups[0])?,
                    self.lookup_tg(&target_groups[1])?,
                ];
                for (slot, tg) in tgs.into_iter().enumerate() {
                    self.call(ApiCall::AddTags)?;
                    let tags = &mut self.elb.target_groups[tg as usize].tags;
                    let live = if slot == *live_slot { "true" } else { "false" };
                    tags.insert("bluegreen:live".into(), live.into());
                    tags.insert("bluegreen:slot".into(), ["a", "b"][slot.min(1)].into());
                    tags.insert("bluegreen:deployment".into(), deployment.clone());
                    tags.insert("bluegreen:outcome".into(), outcome.clone());
                }
                Ok(CommandResult::Tagged)
            }
            // The simulated account has no Application Auto Scaling: nothing to move.
            CommandKind::PlaceScaling { .. } => Ok(CommandResult::ScalingPlaced { moved: false }),
            CommandKind::Observe(o) => self.observe(o).map(CommandResult::Observed),
            CommandKind::CallHook(call) => match self.hooks.answer(call) {
                HookOutcome::Answer { verdict, .. } => Ok(CommandResult::Hook(verdict)),
                HookOutcome::Error(e) => Err(e),
                HookOutcome::Hang => Err(CommandError::retryable(
                    "Timeout",
                    format!(
                        "hook {} did not answer within {} ms",
                        call.name, call.timeout_ms
                    ),
                )),
            },
        }
    }

    fn call(&mut self, call: ApiCall) -> Result<(), CommandError> {
        if self.api.call(call) {
            Ok(())
        } else {
            Err(err::throttled(call))
        }
    }

    /// A read-back after a write: throttling here leaves the write applied.
    fn call_after_write(&mut self, call: ApiCall) -> Result<(), CommandError> {
        if self.api.call(call) {
            Ok(())
        } else {
            Err(err::throttled_after_write(call))
        }
    }

    fn lookup_cluster(&self, cluster: &Name) -> Result<u32, CommandError> {
        self.ecs.cluster_named(cluster).ok_or_else(|| {
            err::fatal(
                "ClusterNotFoundException",
                format!("Cluster not found: {cluster}"),
            )
        })
    }

    fn lookup_service(&self, cluster: &Name, service: &Name) -> Result<u32, CommandError> {
        let c = self.lookup_cluster(cluster)?;
        self.ecs.service_named(c, service).ok_or_else(|| {
            err::fatal(
                "ServiceNotFoundException",
                format!("Service not found: {service} in cluster {cluster}"),
            )
        })
    }

    fn lookup_task_set(&self, service: u32, task_set: &str) -> Result<u32, CommandError> {
        self.ecs
            .task_set_by_arn
            .get(task_set)
            .copied()
            .filter(|t| {
                let ts = &self.ecs.task_sets[*t as usize];
                ts.service == service && !ts.gone
            })
            .ok_or_else(|| {
                err::fatal(
                    "TaskSetNotFoundException",
                    format!("The specified task set does not exist: {task_set}"),
                )
            })
    }

    fn lookup_td(&self, arn: &str) -> Result<u32, CommandError> {
        self.ecs.td_by_arn.get(arn).copied().ok_or_else(|| {
            err::fatal(
                "ClientException",
                format!("Unable to describe task definition {arn}"),
            )
        })
    }

    pub(crate) fn lookup_tg(&self, arn: &Name) -> Result<u32, CommandError> {
        self.elb.target_group(arn).ok_or_else(|| {
            err::fatal(
                "TargetGroupNotFound",
                format!("One or more target groups not found: {arn}"),
            )
        })
    }

    fn lookup_forward(&self, l: &ListenerRef) -> Result<Option<u32>, CommandError> {
        self.elb
            .forward_of(&l.listener_arn, l.rule_arn.as_deref())
            .map_err(|code| {
                let what = if code == "RuleNotFound" {
                    l.rule_arn.as_deref().unwrap_or_default()
                } else {
                    &l.listener_arn
                };
                err::fatal(code, format!("{what} not found"))
            })
    }

    fn describe_forward(&mut self, l: &ListenerRef) -> Res {
        let f = self.lookup_forward(l)?;
        self.call(if l.rule_arn.is_some() {
            ApiCall::DescribeRules
        } else {
            ApiCall::DescribeListeners
        })?;
        Ok(CommandResult::Observed(Observation::Listener(
            self.elb.state_of(f),
        )))
    }

    fn preflight(&mut self, p: &Preflight) -> Res {
        self.call(ApiCall::DescribeListeners)?;
        if p.listener.rule_arn.is_some() {
            self.call(ApiCall::DescribeRules)?;
        }
        self.lookup_forward(&p.listener)?;
        if let Some(test) = &p.test_listener {
            self.call(ApiCall::DescribeListeners)?;
            if test.rule_arn.is_some() {
                self.call(ApiCall::DescribeRules)?;
            }
            self.lookup_forward(test)?;
        }
        self.call(ApiCall::DescribeTargetGroups)?;
        let tgs = [
            self.lookup_tg(&p.target_groups[0])?,
            self.lookup_tg(&p.target_groups[1])?,
        ];
        self.call(ApiCall::DescribeClusters)?;
        self.lookup_cluster(&p.cluster)?;
        self.call(ApiCall::DescribeServices)?;
        let mut tds = Vec::new();
        match p.mode {
            bluegreen_core::Mode::ServicePair => {
                for (i, name) in p.services.iter().enumerate().take(2) {
                    let s = self.lookup_service(&p.cluster, name)?;
                    let svc = &self.ecs.services[s as usize];
                    if svc.external {
                        return Err(err::fatal(
                            "InvalidParameterException",
                            format!(
                                "service {name} uses the EXTERNAL deployment controller; the service-pair mode needs ECS"
                            ),
                        ));
                    }
                    if svc.tg != Some(tgs[i]) {
                        return Err(err::fatal(
                            "InvalidParameterException",
                            format!(
                                "service {name} is not bound to target group {}",
                                p.target_groups[i]
                            ),
                        ));
                    }
                    tds.extend(svc.td);
                }
            }
            bluegreen_core::Mode::TaskSet => {
                let name = p.services.first().cloned().unwrap_or_default();
                let s = self.lookup_service(&p.cluster, &name)?;
                if !self.ecs.services[s as usize].external {
                    return Err(err::fatal(
                        "InvalidParameterException",
                        format!("service {name} does not use the EXTERNAL deployment controller"),
                    ));
                }
                tds.extend(
                    self.ecs
                        .listed_task_sets(s)
                        .map(|t| self.ecs.task_sets[t as usize].td),
                );
            }
        }
        self.call(ApiCall::DescribeTaskDefinition)?;
        if let Some(td) = tds
            .iter()
            .find(|td| self.ecs.task_defs[**td as usize].container != p.container)
        {
            return Err(err::fatal(
                "InvalidParameterException",
                format!(
                    "container {} is not in task definition {}",
                    p.container,
                    self.ecs.task_def_arn(*td)
                ),
            ));
        }
        Ok(CommandResult::PreflightPassed)
    }

    fn find_task_definition(&mut self, base: &str, container: &str, image: &str) -> Res {
        self.call(ApiCall::ListTaskDefinitions)?;
        self.call(ApiCall::DescribeTaskDefinition)?;
        let b = self.lookup_td(base)?;
        let bd = &self.ecs.task_defs[b as usize];
        if bd.container == container && bd.image == image {
            return Ok(CommandResult::TaskDefinitionFound {
                arn: Some(bd.arn.clone()),
            });
        }
        let family = bd.family.clone();
        let found = self.ecs.families.get(&family).and_then(|revs| {
            revs.iter().rev().find(|td| {
                self.ecs.task_defs[**td as usize]
                    .tags
                    .as_ref()
                    .is_some_and(|(tb, ti)| tb == base && ti == image)
            })
        });
        Ok(CommandResult::TaskDefinitionFound {
            arn: found.map(|td| self.ecs.task_def_arn(*td).clone()),
        })
    }

    fn register_task_definition(&mut self, base: &str, container: &str, image: &str) -> Res {
        self.call(ApiCall::DescribeTaskDefinition)?;
        let b = self.lookup_td(base)?;
        let bd = self.ecs.task_defs[b as usize].clone();
        if bd.container != container {
            return Err(err::fatal(
                "ClientException",
                format!("container {container} is not in task definition {base}"),
            ));
        }
        self.call(ApiCall::RegisterTaskDefinition)?;
        let td = self.add_task_def(
            &bd.family,
            container,
            image,
            Some((Name::from(base), Name::from(image))),
            bd.app,
        );
        self.effects.push(WriteEffect::Registered { td });
        Ok(CommandResult::TaskDefinitionRegistered {
            arn: self.ecs.task_def_arn(td).clone(),
        })
    }

    /// Another caller sets a service's desired count — Application Auto Scaling scaling
    /// it out or in. `false` when there is no such service.
    pub fn autoscale(&mut self, cluster: &str, service: &str, desired: u32) -> bool {
        let Some(s) = self
            .ecs
            .cluster(cluster)
            .and_then(|c| self.ecs.service(c, service))
        else {
            return false;
        };
        self.update_service(s, None, Some(desired));
        true
    }

    /// A service's desired and running task counts.
    pub fn service_counts(&self, cluster: &str, service: &str) -> Option<(u32, u32)> {
        let s = self
            .ecs
            .cluster(cluster)
            .and_then(|c| self.ecs.service(c, service))?;
        let s = &self.ecs.services[s as usize];
        let running = s
            .tasks
            .iter()
            .filter(|&&t| {
                let t = &self.ecs.tasks[t as usize];
                t.alive && t.status == super::ecs::TaskStatus::Running
            })
            .count() as u32;
        Some((s.desired, running))
    }

    fn apply_update(&mut self, service: u32, td: Option<u32>, desired: Option<u32>) {
        let (desired_before, td_before) = {
            let s = &self.ecs.services[service as usize];
            (s.desired, s.td)
        };
        self.update_service(service, td, desired);
        let s = &self.ecs.services[service as usize];
        self.effects.push(WriteEffect::Service {
            service,
            desired_before,
            desired_after: s.desired,
            td_before,
            td_after: s.td,
        });
    }

    fn ensure_green(&mut self, e: &EnsureGreen, client_token: &str) -> Res {
        match e {
            EnsureGreen::Service {
                cluster,
                service,
                task_definition,
                desired_count,
            } => {
                let s = self.lookup_service(cluster, service)?;
                let td = self.lookup_td(task_definition)?;
                if self.ecs.services[s as usize].external {
                    return Err(err::fatal(
                        "InvalidParameterException",
                        format!(
                            "service {service} uses the EXTERNAL deployment controller: update its task sets instead"
                        ),
                    ));
                }
                self.call(ApiCall::UpdateService)?;
                self.apply_update(s, Some(td), Some(*desired_count));
                Ok(CommandResult::GreenEnsured { task_set: None })
            }
            EnsureGreen::TaskSet {
                cluster,
                service,
                task_definition,
                target_group,
                like_task_set,
                external_id,
            } => {
                let s = self.lookup_service(cluster, service)?;
                self.call(ApiCall::DescribeServices)?;
                if !self.ecs.services[s as usize].external {
                    return Err(err::fatal(
                        "InvalidParameterException",
                        format!(
                            "service {service} does not use the EXTERNAL deployment controller"
                        ),
                    ));
                }
                self.lookup_task_set(s, like_task_set)?;
                let td = self.lookup_td(task_definition)?;
                let tg = self.lookup_tg(target_group)?;
                self.call(ApiCall::CreateTaskSet)?;
                // The client token makes the create idempotent: the same token returns
                // the task set it created the first time.
                let existing = self.ecs.services[s as usize]
                    .task_sets
                    .iter()
                    .copied()
                    .find(|t| {
                        self.ecs.task_sets[*t as usize].client_token.as_deref()
                            == Some(client_token)
                    });
                let ts = match existing {
                    Some(ts) => ts,
                    None => {
                        let ts = self.add_task_set(
                            s,
                            td,
                            tg,
                            Some(external_id.clone()),
                            Some(Name::from(client_token)),
                            super::TaskSetState::Active,
                        );
                        self.reconcile(Env::TaskSet(ts));
                        self.effects
                            .push(WriteEffect::TaskSetCreated { task_set: ts });
                        ts
                    }
                };
                Ok(CommandResult::GreenEnsured {
                    task_set: Some(self.ecs.task_sets[ts as usize].arn.clone()),
                })
            }
        }
    }

    fn delete_environment(&mut self, cluster: &Name, service: &Name, task_set: &str) -> Res {
        let s = self.lookup_service(cluster, service)?;
        self.call(ApiCall::DeleteTaskSet)?;
        match self.ecs.task_set_by_arn.get(task_set).copied() {
            Some(ts) if self.ecs.task_sets[ts as usize].service != s => Err(err::fatal(
                "InvalidParameterException",
                format!("task set {task_set} does not belong to service {service}"),
            )),
            Some(ts) if !self.ecs.task_sets[ts as usize].gone => {
                let was_draining =
                    self.ecs.task_sets[ts as usize].state == super::TaskSetState::Draining;
                self.delete_task_set(ts);
                if !was_draining {
                    self.effects
                        .push(WriteEffect::TaskSetDeleted { task_set: ts });
                }
                Ok(CommandResult::Deleted)
            }
            // Already gone (or never existed): deleting it again succeeds.
            _ => Ok(CommandResult::Deleted),
        }
    }

    fn set_listener_weights(&mut self, l: &ListenerRef, weights: &[TargetWeight]) -> Res {
        let forward = self.lookup_forward(l)?;
        if weights.len() > FORWARD_TARGETS_MAX {
            return Err(err::fatal(
                "ValidationError",
                format!(
                    "a forward action takes at most {FORWARD_TARGETS_MAX} target groups, not {}",
                    weights.len()
                ),
            ));
        }
        let mut config = Vec::with_capacity(weights.len());
        for w in weights {
            if w.weight > WEIGHT_MAX {
                return Err(err::fatal(
                    "ValidationError",
                    format!(
                        "weight {} of {} is outside 0–{WEIGHT_MAX}",
                        w.weight, w.target_group
                    ),
                ));
            }
            let tg = self.lookup_tg(&w.target_group)?;
            if config.iter().any(|(t, _)| *t == tg) {
                return Err(err::fatal(
                    "ValidationError",
                    format!("target group {} is listed twice", w.target_group),
                ));
            }
            config.push((tg, w.weight));
        }
        if Forward::total(&config) == 0 {
            return Err(err::fatal(
                "ValidationError",
                "a weighted forward needs at least one target group with a weight above 0",
            ));
        }
        let write = if l.rule_arn.is_some() {
            ApiCall::ModifyRule
        } else {
            ApiCall::ModifyListener
        };
        self.call(write)?;
        let forward = match forward {
            Some(f) => f,
            None => self.add_default_forward(l),
        };
        let before = self.elb.forwards[forward as usize].config.clone();
        self.set_forward(forward, config.clone());
        self.effects.push(WriteEffect::Forward {
            forward,
            before,
            after: config,
        });
        let app = self.elb.forwards[forward as usize].app;
        if self
            .apps
            .get(app as usize)
            .is_some_and(|a| a.prod == forward)
        {
            self.maybe_alarm_after_change(app);
        }
        self.call_after_write(if l.rule_arn.is_some() {
            ApiCall::DescribeRules
        } else {
            ApiCall::DescribeListeners
        })?;
        Ok(CommandResult::WeightsSet(self.elb.state_of(Some(forward))))
    }

    fn add_default_forward(&mut self, l: &ListenerRef) -> u32 {
        let listener = self
            .elb
            .listener(&l.listener_arn)
            .expect("looked up before");
        let app = self.elb.listeners[listener as usize].app;
        let f = self.elb.forwards.len() as u32;
        self.elb.forwards.push(Forward {
            app,
            listener,
            rule_arn: None,
            config: vec![],
            effective: vec![],
            history: Default::default(),
            writes: 0,
        });
        self.elb.listeners[listener as usize].default = Some(f);
        f
    }

    fn observe(&mut self, o: &Observe) -> Result<Observation, CommandError> {
        match o {
            Observe::Listener(l) => match self.describe_forward(l)? {
                CommandResult::Observed(obs) => Ok(obs),
                _ => unreachable!("describe_forward answers with an observation"),
            },
            Observe::Service {
                cluster,
                service,
                failures,
                also,
            } => {
                let s = self.lookup_service(cluster, service)?;
                let also = also
                    .as_ref()
                    .map(|a| self.lookup_service(cluster, a))
                    .transpose()?;
                // One DescribeServices for both (it takes up to ten).
                self.call(ApiCall::DescribeServices)?;
                if let Some(f) = failures {
                    self.call(ApiCall::ListTasks)?;
                    if self.stopped_since(s, f.since) > 0 {
                        self.call(ApiCall::DescribeTasks)?;
                    }
                }
                let mut status = self.describe_service(s, failures.as_ref());
                status.also = also.map(|a| Box::new(self.describe_service(a, None)));
                Ok(Observation::Service(Box::new(status)))
            }
            Observe::TargetHealth { target_group } => {
                let tg = self.lookup_tg(target_group)?;
                self.call(ApiCall::DescribeTargetHealth)?;
                Ok(Observation::TargetHealth(self.describe_target_health(tg)))
            }
            Observe::Alarms { names } => {
                for _ in 0..names.len().div_ceil(100) {
                    self.call(ApiCall::DescribeAlarms)?;
                }
                Ok(Observation::Alarms(self.describe_alarms(names)))
            }
            Observe::Metrics(req) => {
                self.call(ApiCall::GetMetricData)?;
                Ok(Observation::Metrics(self.get_metric_data(req)))
            }
        }
    }

    /// Answer a hook call with its full outcome (delays and hangs included): the
    /// harness uses this; `execute` folds hangs into a retryable timeout.
    pub fn hook_outcome(&mut self, call: &bluegreen_core::HookCall) -> HookOutcome {
        self.effects.clear();
        self.api.last_calls = 0;
        self.hooks.answer(call)
    }

    /// The ARN a cluster-scoped service would have (for tests).
    pub fn service_arn(cluster: &str, service: &str) -> String {
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}",
            short_name(cluster),
            short_name(service)
        )
    }
}
