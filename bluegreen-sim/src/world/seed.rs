//! Building a world from app drafts: for each, the cluster, the services (or the
//! EXTERNAL service with one PRIMARY task set), target groups, load balancer, listener
//! (+ test listener) and alarms it names, with slot 0 live at 100 % on healthy tasks of
//! image `<app>:initial`.

use std::collections::VecDeque;

use bluegreen_core::spec::target_group_dimension;
use bluegreen_core::{EnvironmentModel, ListenerRef, Name, SpecDraft, Timestamp};

use super::ecs::{Quality, TaskSetState};
use super::elbv2::{Forward, LoadBalancer, TargetGroup};
use super::{AppIx, AppResources, Env, World, WorldProfile, short_name};

impl World {
    /// The world for `apps` (DESIGN §4a timings from `profile`), every draw seeded by
    /// `seed`. A draft naming an app already seeded is skipped.
    pub fn seeded(apps: &[SpecDraft], profile: &WorldProfile, seed: u64, now: Timestamp) -> World {
        let mut w = World::empty(profile, seed, now);
        for draft in apps {
            w.add_app(draft);
        }
        w
    }

    /// Add one app's resources (idempotent by app name).
    pub fn add_app(&mut self, d: &SpecDraft) -> AppIx {
        if let Some(a) = self.app(&d.app) {
            return a;
        }
        let app = self.apps.len() as AppIx;
        let cluster = self.create_cluster(&d.cluster);
        let lb_dim = d
            .listener
            .load_balancer_dimension()
            .unwrap_or_else(|| format!("app/{}/{:016x}", d.app, self.seed));
        let lb = self.add_load_balancer(&lb_dim, app);
        let tgs = [
            self.add_target_group(&d.target_groups[0], lb, app),
            self.add_target_group(&d.target_groups[1], lb, app),
        ];
        let prod = self.add_forward(&d.listener, lb, app, tgs);
        let test = d
            .test_listener
            .as_ref()
            .map(|t| self.add_forward(t, lb, app, tgs));
        let family = d.app.clone();
        let image = format!("{}:initial", d.app);
        let td = self.add_task_def(&family, &d.container, &image, None, app);
        let initial = d.desired_count.unwrap_or(self.profile.initial_tasks).max(1);
        let (services, task_set_mode) = match &d.environment {
            EnvironmentModel::ServicePair { services } => {
                let a =
                    self.create_service(cluster, &services[0], app, false, Some(td), Some(tgs[0]));
                let b =
                    self.create_service(cluster, &services[1], app, false, Some(td), Some(tgs[1]));
                self.ecs.services[a as usize].desired = initial;
                for _ in 0..initial {
                    self.spawn_running(Env::Service(a), td, Some(tgs[0]));
                }
                ([a, b], false)
            }
            EnvironmentModel::TaskSet { service } => {
                let s = self.create_service(cluster, service, app, true, None, None);
                self.ecs.services[s as usize].desired = initial;
                let ts = self.add_task_set(
                    s,
                    td,
                    tgs[0],
                    Some("initial".into()),
                    None,
                    TaskSetState::Primary,
                );
                for _ in 0..initial {
                    self.spawn_running(Env::TaskSet(ts), td, Some(tgs[0]));
                }
                ([s, s], true)
            }
        };
        let alarms = d
            .alarms
            .iter()
            .map(|n| self.add_alarm(n, app, Some(lb)))
            .collect();
        self.elb.target_groups[tgs[0] as usize]
            .quality_history
            .push_back((Timestamp::EPOCH, Quality::Healthy));
        self.apps.push(AppResources {
            name: d.app.clone(),
            target_groups: tgs,
            prod,
            test,
            services,
            task_set_mode,
            alarms,
            family,
        });
        self.app_by_name.insert(d.app.clone(), app);
        app
    }

    fn add_load_balancer(&mut self, dimension: &str, app: AppIx) -> u32 {
        if let Some(&lb) = self.elb.lb_by_dimension.get(dimension) {
            return lb;
        }
        let ix = self.elb.load_balancers.len() as u32;
        self.elb.load_balancers.push(LoadBalancer {
            dimension: Name::from(dimension),
            app,
        });
        self.elb.lb_by_dimension.insert(Name::from(dimension), ix);
        ix
    }

    /// `arn` is kept as given (the draft's own name), so lookups by the names commands
    /// carry find it by address.
    fn add_target_group(&mut self, arn: &Name, lb: u32, app: AppIx) -> u32 {
        if let Some(tg) = self.elb.target_group(arn) {
            return tg;
        }
        let name = short_name(arn).to_string();
        let dimension =
            target_group_dimension(arn).unwrap_or_else(|| format!("targetgroup/{name}"));
        let span = self.profile.deregistration_delay_ms;
        let delay = self.rng.range(span.lo, span.hi);
        let ix = self.elb.target_groups.len() as u32;
        let arn = arn.clone();
        self.elb.target_groups.push(TargetGroup {
            arn_list: std::sync::Arc::from([arn.clone()]),
            arn: arn.clone(),
            name: name.into(),
            dimension: dimension.clone().into(),
            lb: Some(lb),
            app,
            interval_ms: self.profile.health_interval_ms,
            healthy_threshold: self.profile.healthy_threshold,
            unhealthy_threshold: self.profile.unhealthy_threshold,
            deregistration_delay_ms: delay,
            targets: Vec::new(),
            health: Default::default(),
            quality_history: VecDeque::new(),
            tags: Default::default(),
        });
        self.elb.tg_by_arn.insert(arn, ix);
        self.elb.tg_by_dimension.insert(dimension.into(), ix);
        ix
    }

    /// The listener (created when new) and the forward `l` addresses, pointing at slot 0.
    fn add_forward(&mut self, l: &ListenerRef, lb: u32, app: AppIx, tgs: [u32; 2]) -> u32 {
        let listener = match self.elb.listener(&l.listener_arn) {
            Some(x) => x,
            None => {
                let ix = self.elb.listeners.len() as u32;
                self.elb.listeners.push(super::elbv2::Listener {
                    arn: l.listener_arn.clone(),
                    lb,
                    app,
                    default: None,
                    rules: Vec::new(),
                });
                self.elb.listener_by_arn.insert(l.listener_arn.clone(), ix);
                ix
            }
        };
        if let Ok(Some(f)) = self.elb.forward_of(&l.listener_arn, l.rule_arn.as_deref()) {
            return f;
        }
        let config = vec![(tgs[0], 1), (tgs[1], 0)];
        let f = self.elb.forwards.len() as u32;
        let mut history = VecDeque::new();
        history.push_back((Timestamp::EPOCH, config.clone()));
        self.elb.forwards.push(Forward {
            app,
            listener,
            rule_arn: l.rule_arn.clone(),
            config: config.clone(),
            effective: config,
            history,
            writes: 0,
        });
        let lst = &mut self.elb.listeners[listener as usize];
        match &l.rule_arn {
            Some(rule) => lst.rules.push((rule.clone(), f)),
            None => lst.default = Some(f),
        }
        f
    }

    /// Register a task-definition revision of an app's family running `image` (for
    /// scenarios deploying an existing revision). Returns its ARN.
    pub fn register_image(&mut self, app: AppIx, image: &str) -> String {
        let res = &self.apps[app as usize];
        let family = res.family.clone();
        let first = self.ecs.families[&family][0];
        let container = self.ecs.task_defs[first as usize].container.clone();
        let td = self.add_task_def(&family, &container, image, None, app);
        self.ecs.task_def_arn(td).to_string()
    }
}
