//! ECS: clusters, services (ECS and EXTERNAL deployment controllers), task sets, task
//! definitions with revisions, and tasks that start after a drawn delay, crash when
//! their image is bad, are replaced by the scheduler and drain before they stop.

use std::collections::{BTreeMap, VecDeque};

use bluegreen_core::{CommandError, FailureFilter, ServiceStatus, TaskSetStatus, Timestamp};

use super::api::err;
use super::elbv2::TargetState;
use super::{ACCOUNT, AppIx, REGION, World, WorldEvent, last_segment};

/// Stopped tasks ECS remembers per service (it shows stopped tasks for about an hour).
pub const STOPPED_KEPT_MAX: usize = 1_000;
/// Most tasks one environment may hold (the ECS quota is 5,000 per service).
pub const TASKS_PER_ENV_MAX: u32 = 5_000;

/// An environment: an ECS-controlled service, or one task set of an EXTERNAL service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Env {
    Service(u32),
    TaskSet(u32),
}

/// How an image behaves once running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    Healthy,
    /// Exits 5–30 s after it starts; ECS replaces it, and it exits again.
    CrashLoop,
    /// Runs, but never passes a health check.
    Unhealthy,
    /// Passes health checks but answers a fifth of requests with 5xx.
    Errors5xx,
    /// Passes health checks but answers slowly (p99 ≈ 1.5 s).
    Slow,
}

impl Quality {
    pub fn from_name(image: &str) -> Quality {
        let lower = image.to_ascii_lowercase();
        if lower.contains("crashloop") {
            Quality::CrashLoop
        } else if lower.contains("unhealthy") {
            Quality::Unhealthy
        } else if lower.contains("5xx") {
            Quality::Errors5xx
        } else if lower.contains("slow") {
            Quality::Slow
        } else {
            Quality::Healthy
        }
    }

    /// Fraction of requests answered 5xx by the target.
    pub fn error_rate(self) -> f64 {
        match self {
            Quality::Errors5xx => 0.20,
            _ => 0.001,
        }
    }

    /// p99 response time in seconds.
    pub fn p99_s(self) -> f64 {
        match self {
            Quality::Slow => 1.5,
            _ => 0.08,
        }
    }

    pub fn passes_health_checks(self) -> bool {
        !matches!(self, Quality::Unhealthy)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskDef {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    pub container: String,
    pub image: String,
    /// `bluegreen:base` and `bluegreen:image` tags, when registered by a deployment.
    pub tags: Option<(String, String)>,
    pub app: AppIx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Running,
    /// Desired STOPPED: deregistered from its target group, draining, still running.
    Deactivating,
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub epoch: u32,
    pub alive: bool,
    pub env: Env,
    pub td: u32,
    pub app: AppIx,
    pub status: TaskStatus,
    pub quality: Quality,
    /// Drawn at creation: this task will fail to start (image pull error and the like).
    pub start_fails: bool,
    pub created_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
    pub tg: Option<u32>,
    pub target: TargetState,
    pub tgen: u32,
    pub flap_until: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoppedTask {
    pub td: u32,
    pub at: Timestamp,
    pub task_set: Option<u32>,
    pub failed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub arn: String,
    pub cluster: u32,
    pub app: AppIx,
    /// `EXTERNAL` deployment controller (task sets) rather than `ECS`.
    pub external: bool,
    pub desired: u32,
    /// ECS controller: the service's task definition.
    pub td: Option<u32>,
    pub tg: Option<u32>,
    pub task_sets: Vec<u32>,
    pub tasks: Vec<u32>,
    pub stopped: VecDeque<StoppedTask>,
    pub deleted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSetState {
    Primary,
    Active,
    Draining,
}

impl TaskSetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSetState::Primary => "PRIMARY",
            TaskSetState::Active => "ACTIVE",
            TaskSetState::Draining => "DRAINING",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskSet {
    pub id: String,
    pub arn: String,
    pub service: u32,
    pub external_id: Option<String>,
    pub td: u32,
    pub tg: u32,
    pub state: TaskSetState,
    /// Deleted and every task stopped: no longer listed.
    pub gone: bool,
    pub client_token: Option<String>,
    pub tasks: Vec<u32>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
}

/// All ECS state of the account.
#[derive(Clone, Debug, Default)]
pub struct Ecs {
    pub clusters: Vec<Cluster>,
    pub services: Vec<Service>,
    pub task_sets: Vec<TaskSet>,
    pub task_defs: Vec<TaskDef>,
    pub tasks: Vec<Task>,
    free_tasks: Vec<u32>,
    cluster_by_name: BTreeMap<String, u32>,
    /// Service name → (cluster, service) pairs with that name.
    service_by_name: BTreeMap<String, Vec<(u32, u32)>>,
    pub task_set_by_arn: BTreeMap<String, u32>,
    pub td_by_arn: BTreeMap<String, u32>,
    pub families: BTreeMap<String, Vec<u32>>,
}

impl Ecs {
    pub(crate) fn task_alive(&self, task: u32, epoch: u32) -> bool {
        self.tasks
            .get(task as usize)
            .is_some_and(|t| t.alive && t.epoch == epoch)
    }

    pub fn cluster(&self, name_or_arn: &str) -> Option<u32> {
        self.cluster_by_name.get(last_segment(name_or_arn)).copied()
    }

    pub fn service(&self, cluster: u32, name_or_arn: &str) -> Option<u32> {
        self.service_by_name
            .get(last_segment(name_or_arn))?
            .iter()
            .find(|(c, _)| *c == cluster)
            .map(|(_, s)| *s)
            .filter(|s| !self.services[*s as usize].deleted)
    }

    /// Tasks of an environment that count towards its size (not stopping).
    pub fn env_tasks(&self, env: Env) -> &[u32] {
        match env {
            Env::Service(s) => &self.services[s as usize].tasks,
            Env::TaskSet(t) => &self.task_sets[t as usize].tasks,
        }
    }

    /// (running, pending) of an environment; deactivating tasks still run.
    pub fn counts(&self, env: Env) -> (u32, u32) {
        let mut running = 0;
        let mut pending = 0;
        for &t in self.env_tasks(env) {
            match self.tasks[t as usize].status {
                TaskStatus::Running | TaskStatus::Deactivating => running += 1,
                TaskStatus::Pending => pending += 1,
                TaskStatus::Stopped => {}
            }
        }
        (running, pending)
    }

    /// The size ECS computes for a task set: its service's desired count (scale 100 %),
    /// zero once deleted.
    pub fn computed_desired(&self, ts: u32) -> u32 {
        let t = &self.task_sets[ts as usize];
        if t.state == TaskSetState::Draining || t.gone {
            0
        } else {
            self.services[t.service as usize].desired
        }
    }

    /// [`Ecs::computed_desired`] for a task set in hand.
    pub fn computed_desired_of(&self, t: &TaskSet) -> u32 {
        if t.state == TaskSetState::Draining || t.gone {
            0
        } else {
            self.services[t.service as usize].desired
        }
    }

    /// Task sets of a service still listed (not gone).
    pub fn listed_task_sets(&self, service: u32) -> impl Iterator<Item = u32> + '_ {
        self.services[service as usize]
            .task_sets
            .iter()
            .copied()
            .filter(|t| !self.task_sets[*t as usize].gone)
    }

    pub fn task_def_arn(&self, td: u32) -> &str {
        &self.task_defs[td as usize].arn
    }
}

impl World {
    pub(crate) fn create_cluster(&mut self, name: &str) -> u32 {
        if let Some(c) = self.ecs.cluster(name) {
            return c;
        }
        let ix = self.ecs.clusters.len() as u32;
        self.ecs.clusters.push(Cluster {
            name: name.to_string(),
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"),
        });
        self.ecs.cluster_by_name.insert(name.to_string(), ix);
        ix
    }

    /// Register a revision in `family` (RegisterTaskDefinition: always a new revision).
    pub(crate) fn add_task_def(
        &mut self,
        family: &str,
        container: &str,
        image: &str,
        tags: Option<(String, String)>,
        app: AppIx,
    ) -> u32 {
        let revisions = self.ecs.families.entry(family.to_string()).or_default();
        let revision = revisions.len() as u32 + 1;
        let ix = self.ecs.task_defs.len() as u32;
        revisions.push(ix);
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}");
        self.ecs.td_by_arn.insert(arn.clone(), ix);
        self.ecs
            .td_by_arn
            .insert(format!("{family}:{revision}"), ix);
        self.ecs.task_defs.push(TaskDef {
            arn,
            family: family.to_string(),
            revision,
            container: container.to_string(),
            image: image.to_string(),
            tags,
            app,
        });
        ix
    }

    pub(crate) fn create_service(
        &mut self,
        cluster: u32,
        name: &str,
        app: AppIx,
        external: bool,
        td: Option<u32>,
        tg: Option<u32>,
    ) -> u32 {
        let ix = self.ecs.services.len() as u32;
        let cname = self.ecs.clusters[cluster as usize].name.clone();
        self.ecs.services.push(Service {
            name: name.to_string(),
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cname}/{name}"),
            cluster,
            app,
            external,
            desired: 0,
            td,
            tg,
            task_sets: Vec::new(),
            tasks: Vec::new(),
            stopped: VecDeque::new(),
            deleted: false,
        });
        self.ecs
            .service_by_name
            .entry(name.to_string())
            .or_default()
            .push((cluster, ix));
        ix
    }

    pub(crate) fn add_task_set(
        &mut self,
        service: u32,
        td: u32,
        tg: u32,
        external_id: Option<String>,
        client_token: Option<String>,
        state: TaskSetState,
    ) -> u32 {
        let ix = self.ecs.task_sets.len() as u32;
        let id = format!(
            "ecs-svc/{:019}",
            1_000_000_000_000_000_000u64 / 7 + u64::from(ix) * 7919
        );
        let (cname, sname) = {
            let s = &self.ecs.services[service as usize];
            (
                self.ecs.clusters[s.cluster as usize].name.clone(),
                s.name.clone(),
            )
        };
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-set/{cname}/{sname}/{id}");
        self.ecs.task_set_by_arn.insert(arn.clone(), ix);
        self.ecs.task_set_by_arn.insert(id.clone(), ix);
        self.ecs.task_sets.push(TaskSet {
            id,
            arn,
            service,
            external_id,
            td,
            tg,
            state,
            gone: false,
            client_token,
            tasks: Vec::new(),
            created_at: self.now,
        });
        self.ecs.services[service as usize].task_sets.push(ix);
        ix
    }

    pub(crate) fn env_app(&self, env: Env) -> AppIx {
        match env {
            Env::Service(s) => self.ecs.services[s as usize].app,
            Env::TaskSet(t) => {
                let s = self.ecs.task_sets[t as usize].service;
                self.ecs.services[s as usize].app
            }
        }
    }

    fn env_target(&self, env: Env) -> (u32, Option<u32>) {
        match env {
            Env::Service(s) => {
                let svc = &self.ecs.services[s as usize];
                (svc.desired, svc.tg)
            }
            Env::TaskSet(t) => (
                self.ecs.computed_desired(t),
                Some(self.ecs.task_sets[t as usize].tg),
            ),
        }
    }

    fn env_td(&self, env: Env) -> Option<u32> {
        match env {
            Env::Service(s) => self.ecs.services[s as usize].td,
            Env::TaskSet(t) => Some(self.ecs.task_sets[t as usize].td),
        }
    }

    /// The ECS scheduler: start tasks up to the desired count, stop extras (pending
    /// first), and — a rolling update with minimum healthy 100 % — stop tasks of an old
    /// revision only once enough tasks of the new one run.
    pub(crate) fn reconcile(&mut self, env: Env) {
        let (want, tg) = self.env_target(env);
        let Some(td) = self.env_td(env) else { return };
        let mut current_pending = Vec::new();
        let mut current_running = Vec::new();
        let mut stale = Vec::new();
        for &t in self.ecs.env_tasks(env) {
            let task = &self.ecs.tasks[t as usize];
            match task.status {
                TaskStatus::Pending | TaskStatus::Running if task.td != td => stale.push(t),
                TaskStatus::Pending => current_pending.push(t),
                TaskStatus::Running => current_running.push(t),
                TaskStatus::Deactivating | TaskStatus::Stopped => {}
            }
        }
        let current = (current_pending.len() + current_running.len()) as u32;
        if current < want {
            let n = (want - current).min(TASKS_PER_ENV_MAX);
            for _ in 0..n {
                self.spawn_task(env, td, tg);
            }
        } else if current > want {
            let mut extra = (current - want) as usize;
            // Pending tasks go first (newest first), then running ones.
            for t in current_pending
                .iter()
                .rev()
                .chain(current_running.iter().rev())
            {
                if extra == 0 {
                    break;
                }
                self.deactivate_task(*t);
                extra -= 1;
            }
        }
        if !stale.is_empty() && (current_running.len() as u32 >= want || want == 0) {
            for t in stale {
                self.deactivate_task(t);
            }
        }
    }

    /// A task that has been running (and healthy) for a long time: what a seeded live
    /// environment holds.
    pub(crate) fn spawn_running(&mut self, env: Env, td: u32, tg: Option<u32>) -> u32 {
        self.spawn_task(env, td, tg);
        let task = *self.ecs.env_tasks(env).last().expect("just spawned");
        let t = &mut self.ecs.tasks[task as usize];
        t.status = TaskStatus::Running;
        t.start_fails = false;
        t.epoch = t.epoch.wrapping_add(1); // retire the scheduled start
        t.created_at = Timestamp::EPOCH;
        if tg.is_some() {
            self.set_target(task, TargetState::Initial);
            self.set_target(task, TargetState::Healthy);
        }
        task
    }

    fn spawn_task(&mut self, env: Env, td: u32, tg: Option<u32>) {
        let image = self.ecs.task_defs[td as usize].image.clone();
        let quality = self.quality_of(&image);
        let start_fails = self.faults.draw_start_failure(&mut self.rng);
        let app = self.env_app(env);
        let task = Task {
            epoch: 0,
            alive: true,
            env,
            td,
            app,
            status: TaskStatus::Pending,
            quality,
            start_fails,
            created_at: self.now,
            stopped_at: None,
            tg,
            target: TargetState::None,
            tgen: 0,
            flap_until: None,
        };
        let ix = match self.ecs.free_tasks.pop() {
            Some(ix) => {
                let epoch = self.ecs.tasks[ix as usize].epoch.wrapping_add(1);
                self.ecs.tasks[ix as usize] = Task { epoch, ..task };
                ix
            }
            None => {
                self.ecs.tasks.push(task);
                (self.ecs.tasks.len() - 1) as u32
            }
        };
        match env {
            Env::Service(s) => self.ecs.services[s as usize].tasks.push(ix),
            Env::TaskSet(t) => self.ecs.task_sets[t as usize].tasks.push(ix),
        }
        let span = self.profile.task_start_ms;
        let delay = self.rng.range(span.lo, span.hi);
        let epoch = self.ecs.tasks[ix as usize].epoch;
        self.schedule(
            self.now.plus_ms(delay),
            WorldEvent::TaskStart { task: ix, epoch },
        );
    }

    pub(crate) fn task_start(&mut self, task: u32) -> Option<AppIx> {
        let t = &self.ecs.tasks[task as usize];
        if t.status != TaskStatus::Pending {
            return None;
        }
        let app = t.app;
        if t.start_fails {
            self.stop_task(task, true);
            return Some(app);
        }
        let (epoch, quality) = (t.epoch, t.quality);
        self.ecs.tasks[task as usize].status = TaskStatus::Running;
        self.register_target(task);
        if quality == Quality::CrashLoop {
            let span = self.profile.crash_after_ms;
            let after = self.rng.range(span.lo, span.hi);
            self.schedule(
                self.now.plus_ms(after),
                WorldEvent::TaskCrash { task, epoch },
            );
        }
        let env = self.ecs.tasks[task as usize].env;
        self.reconcile(env);
        Some(app)
    }

    pub(crate) fn task_crash(&mut self, task: u32) -> Option<AppIx> {
        let t = &self.ecs.tasks[task as usize];
        if !matches!(t.status, TaskStatus::Running | TaskStatus::Deactivating) {
            return None;
        }
        let app = t.app;
        self.stop_task(task, true);
        Some(app)
    }

    /// The deregistration delay of a deactivating task is over: its target leaves the
    /// group and the task stops (it may have crashed meanwhile; then only the target).
    pub(crate) fn task_drained(&mut self, task: u32) -> Option<AppIx> {
        let t = &self.ecs.tasks[task as usize];
        let app = t.app;
        let draining = t.target == TargetState::Draining;
        let deactivating = t.status == TaskStatus::Deactivating;
        if !draining && !deactivating {
            return None;
        }
        if draining {
            self.remove_target(task);
        }
        if deactivating {
            self.stop_task(task, false);
        }
        self.free_if_done(task);
        Some(app)
    }

    /// Desired STOPPED: a pending task stops at once; a running one is deregistered
    /// and stops when its target has drained (the deregistration delay).
    pub(crate) fn deactivate_task(&mut self, task: u32) {
        let t = &self.ecs.tasks[task as usize];
        match t.status {
            TaskStatus::Pending => self.stop_task(task, false),
            TaskStatus::Running => {
                let epoch = t.epoch;
                self.ecs.tasks[task as usize].status = TaskStatus::Deactivating;
                match self.begin_draining(task) {
                    Some(until) => self.schedule(until, WorldEvent::TaskDrained { task, epoch }),
                    None => self.stop_task(task, false),
                }
            }
            TaskStatus::Deactivating | TaskStatus::Stopped => {}
        }
    }

    /// The task stops. A failure is remembered for the circuit breaker and the
    /// scheduler replaces the task after its delay.
    pub(crate) fn stop_task(&mut self, task: u32, failed: bool) {
        let now = self.now;
        let t = &mut self.ecs.tasks[task as usize];
        if t.status == TaskStatus::Stopped {
            return;
        }
        t.status = TaskStatus::Stopped;
        t.stopped_at = Some(now);
        let (env, td) = (t.env, t.td);
        let (service, task_set) = match env {
            Env::Service(s) => (s, None),
            Env::TaskSet(ts) => (self.ecs.task_sets[ts as usize].service, Some(ts)),
        };
        {
            let svc = &mut self.ecs.services[service as usize];
            if svc.stopped.len() >= STOPPED_KEPT_MAX {
                svc.stopped.pop_front();
            }
            svc.stopped.push_back(StoppedTask {
                td,
                at: now,
                task_set,
                failed,
            });
        }
        match env {
            Env::Service(s) => self.ecs.services[s as usize].tasks.retain(|x| *x != task),
            Env::TaskSet(ts) => self.ecs.task_sets[ts as usize].tasks.retain(|x| *x != task),
        }
        // A target still registered starts draining; the slot is freed when it is gone.
        if matches!(
            self.ecs.tasks[task as usize].target,
            TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy
        ) {
            if let Some(until) = self.begin_draining(task) {
                let (epoch, tgen) = {
                    let t = &self.ecs.tasks[task as usize];
                    (t.epoch, t.tgen)
                };
                self.schedule(until, WorldEvent::TargetGone { task, epoch, tgen });
            }
        }
        self.free_if_done(task);
        if failed {
            let span = self.profile.replace_delay_ms;
            let delay = self.rng.range(span.lo, span.hi);
            self.schedule(self.now.plus_ms(delay), WorldEvent::Reconcile { env });
        }
        if let Env::TaskSet(ts) = env {
            let t = &mut self.ecs.task_sets[ts as usize];
            if t.state == TaskSetState::Draining && t.tasks.is_empty() {
                t.gone = true;
            }
        }
    }

    pub(crate) fn free_if_done(&mut self, task: u32) {
        let t = &mut self.ecs.tasks[task as usize];
        if t.alive && t.status == TaskStatus::Stopped && t.target == TargetState::None {
            t.alive = false;
            self.ecs.free_tasks.push(task);
        }
    }

    /// UpdateService: task definition and/or desired count.
    pub(crate) fn update_service(&mut self, service: u32, td: Option<u32>, desired: Option<u32>) {
        let svc = &mut self.ecs.services[service as usize];
        if let Some(td) = td {
            svc.td = Some(td);
        }
        if let Some(d) = desired {
            svc.desired = d.min(TASKS_PER_ENV_MAX);
        }
        if svc.external {
            let sets: Vec<u32> = self.ecs.listed_task_sets(service).collect();
            for ts in sets {
                self.reconcile(Env::TaskSet(ts));
            }
        } else {
            self.reconcile(Env::Service(service));
        }
    }

    /// DeleteTaskSet (forced, as the adapter sends it): the set drains and is gone once
    /// its last task stopped.
    pub(crate) fn delete_task_set(&mut self, ts: u32) {
        let t = &mut self.ecs.task_sets[ts as usize];
        if t.gone || t.state == TaskSetState::Draining {
            return;
        }
        t.state = TaskSetState::Draining;
        self.reconcile(Env::TaskSet(ts));
        let t = &mut self.ecs.task_sets[ts as usize];
        if t.tasks.is_empty() {
            t.gone = true;
        }
    }

    pub(crate) fn set_primary(&mut self, service: u32, ts: u32) {
        let sets: Vec<u32> = self.ecs.listed_task_sets(service).collect();
        for s in sets {
            let t = &mut self.ecs.task_sets[s as usize];
            if t.state == TaskSetState::Draining {
                continue;
            }
            t.state = if s == ts {
                TaskSetState::Primary
            } else {
                TaskSetState::Active
            };
        }
    }

    /// DeleteService. Like ECS, a service that still has a desired count refuses
    /// deletion unless forced.
    pub fn delete_service(&mut self, service: u32, force: bool) -> Result<(), CommandError> {
        let svc = &self.ecs.services[service as usize];
        if svc.desired > 0 && !force {
            return Err(err::fatal(
                "InvalidParameterException",
                format!(
                    "The service cannot be stopped while it is scaled above 0 (service {}, desired {}); scale it down or use force",
                    svc.name, svc.desired
                ),
            ));
        }
        self.ecs.services[service as usize].desired = 0;
        if self.ecs.services[service as usize].external {
            let sets: Vec<u32> = self.ecs.listed_task_sets(service).collect();
            for ts in sets {
                self.delete_task_set(ts);
            }
        } else {
            self.reconcile(Env::Service(service));
        }
        self.ecs.services[service as usize].deleted = true;
        Ok(())
    }

    fn task_set_status(&self, ts: u32) -> TaskSetStatus {
        let t = &self.ecs.task_sets[ts as usize];
        let (running, pending) = self.ecs.counts(Env::TaskSet(ts));
        let desired = self.ecs.computed_desired(ts);
        TaskSetStatus {
            id: t.id.clone(),
            arn: t.arn.clone(),
            status: t.state.as_str().to_string(),
            external_id: t.external_id.clone(),
            task_definition: self.ecs.task_def_arn(t.td).to_string(),
            target_groups: vec![self.elb.target_groups[t.tg as usize].arn.clone()],
            computed_desired_count: desired,
            running_count: running,
            pending_count: pending,
            stability_status: if running == desired && pending == 0 {
                "STEADY_STATE"
            } else {
                "STABILIZING"
            }
            .to_string(),
        }
    }

    /// DescribeServices (+ ListTasks STOPPED for the failure filter).
    pub(crate) fn describe_service(
        &self,
        service: u32,
        failures: Option<&FailureFilter>,
    ) -> ServiceStatus {
        let svc = &self.ecs.services[service as usize];
        let (mut running, mut pending) = (0, 0);
        let mut task_sets = Vec::new();
        if svc.external {
            for ts in self.ecs.listed_task_sets(service) {
                let st = self.task_set_status(ts);
                running += st.running_count;
                pending += st.pending_count;
                task_sets.push(st);
            }
        } else {
            (running, pending) = self.ecs.counts(Env::Service(service));
        }
        let failed_tasks = failures.map_or(0, |f| self.failed_tasks(service, f));
        ServiceStatus {
            service: svc.name.clone(),
            status: if svc.deleted { "INACTIVE" } else { "ACTIVE" }.to_string(),
            desired_count: svc.desired,
            running_count: running,
            pending_count: pending,
            task_definition: svc
                .td
                .filter(|_| !svc.external)
                .map(|td| self.ecs.task_def_arn(td).to_string())
                .unwrap_or_default(),
            target_groups: svc
                .tg
                .map(|tg| vec![self.elb.target_groups[tg as usize].arn.clone()])
                .unwrap_or_default(),
            task_sets,
            failed_tasks,
        }
    }

    /// Stopped-by-failure tasks matching the filter (ListTasks STOPPED + DescribeTasks).
    pub(crate) fn failed_tasks(&self, service: u32, f: &FailureFilter) -> u32 {
        let td = self.ecs.td_by_arn.get(&f.task_definition).copied();
        let ts = f
            .started_by
            .as_ref()
            .map(|s| self.ecs.task_set_by_arn.get(s).copied());
        self.ecs.services[service as usize]
            .stopped
            .iter()
            .filter(|s| s.failed && Some(s.td) == td && s.at >= f.since)
            .filter(|s| match ts {
                None => true,
                Some(want) => want.is_some() && s.task_set == want,
            })
            .count() as u32
    }

    /// Stopped tasks of a service at or after `since` (how many a `ListTasks STOPPED`
    /// would page through).
    pub(crate) fn stopped_since(&self, service: u32, since: Timestamp) -> usize {
        self.ecs.services[service as usize]
            .stopped
            .iter()
            .filter(|s| s.at >= since)
            .count()
    }
}
