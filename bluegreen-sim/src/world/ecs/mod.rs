//! ECS: clusters, services (ECS and EXTERNAL deployment controllers), task sets, task
//! definitions with revisions, and tasks that start after a drawn delay, crash when
//! their image is bad, are replaced by the scheduler and drain before they stop.

use bluegreen_core::Name;
use std::collections::{BTreeMap, VecDeque};

use bluegreen_core::{CommandError, FailureFilter, ServiceStatus, TaskSetStatus, Timestamp};

use super::api::err;
use super::elbv2::TargetState;
use super::{ACCOUNT, AppIx, REGION, World, short_name, short_name_of};

mod tasks;

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
        // Case-insensitive, without lowering a copy: every task the world starts asks.
        let has = |word: &str| {
            image
                .as_bytes()
                .windows(word.len())
                .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
        };
        if has("crashloop") {
            Quality::CrashLoop
        } else if has("unhealthy") {
            Quality::Unhealthy
        } else if has("5xx") {
            Quality::Errors5xx
        } else if has("slow") {
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
    pub arn: Name,
    pub family: Name,
    pub revision: u32,
    pub container: Name,
    pub image: Name,
    /// `bluegreen:base` and `bluegreen:image` tags, when registered by a deployment.
    pub tags: Option<(Name, Name)>,
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
    pub name: Name,
    pub arn: Name,
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
    pub id: Name,
    pub arn: Name,
    pub service: u32,
    pub external_id: Option<Name>,
    pub td: u32,
    pub tg: u32,
    pub state: TaskSetState,
    /// Deleted and every task stopped: no longer listed.
    pub gone: bool,
    pub client_token: Option<Name>,
    pub tasks: Vec<u32>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: Name,
    pub arn: Name,
}

/// All ECS state of the account.
/// The words the world answers with on every read, made once: cloning a [`Name`] is a
/// count, making one from text is an allocation (a service read used to make three).
#[derive(Clone, Debug)]
pub(crate) struct Words {
    active: Name,
    inactive: Name,
    primary: Name,
    draining: Name,
    steady: Name,
    stabilizing: Name,
    empty: Name,
    no_target_groups: std::sync::Arc<[Name]>,
}

impl Words {
    fn new() -> Self {
        Words {
            active: Name::from("ACTIVE"),
            inactive: Name::from("INACTIVE"),
            primary: Name::from(TaskSetState::Primary.as_str()),
            draining: Name::from(TaskSetState::Draining.as_str()),
            steady: Name::from("STEADY_STATE"),
            stabilizing: Name::from("STABILIZING"),
            empty: Name::default(),
            no_target_groups: std::sync::Arc::from([]),
        }
    }
}

/// Made once per thread: a world is made per run (the benches make one per
/// deployment), and a clone of these shares the texts.
impl Default for Words {
    fn default() -> Self {
        thread_local! {
            static WORDS: Words = Words::new();
        }
        WORDS.with(Words::clone)
    }
}

impl Words {
    fn task_set_state(&self, state: TaskSetState) -> Name {
        match state {
            TaskSetState::Primary => self.primary.clone(),
            TaskSetState::Active => self.active.clone(),
            TaskSetState::Draining => self.draining.clone(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ecs {
    words: Words,
    pub clusters: Vec<Cluster>,
    pub services: Vec<Service>,
    pub task_sets: Vec<TaskSet>,
    pub task_defs: Vec<TaskDef>,
    pub tasks: Vec<Task>,
    free_tasks: Vec<u32>,
    cluster_by_name: BTreeMap<Name, u32>,
    /// Service name → (cluster, service) pairs with that name.
    service_by_name: BTreeMap<Name, Vec<(u32, u32)>>,
    pub task_set_by_arn: BTreeMap<Name, u32>,
    pub td_by_arn: BTreeMap<Name, u32>,
    pub families: BTreeMap<Name, Vec<u32>>,
}

impl Ecs {
    pub(crate) fn task_alive(&self, task: u32, epoch: u32) -> bool {
        self.tasks
            .get(task as usize)
            .is_some_and(|t| t.alive && t.epoch == epoch)
    }

    pub fn cluster(&self, name_or_arn: &str) -> Option<u32> {
        self.cluster_by_name.get(short_name(name_or_arn)).copied()
    }

    /// [`Ecs::cluster`] for a name a command carries: the world keeps the names of the
    /// drafts it was seeded from, so a command's name is usually the very key (found
    /// by address); an ARN or another spelling falls back to the short name.
    pub fn cluster_named(&self, name_or_arn: &Name) -> Option<u32> {
        match self.cluster_by_name.get(name_or_arn) {
            Some(&c) => Some(c),
            None => self.cluster(name_or_arn),
        }
    }

    /// [`Ecs::service`] for a name a command carries (see [`Ecs::cluster_named`]).
    pub fn service_named(&self, cluster: u32, name_or_arn: &Name) -> Option<u32> {
        let in_clusters = match self.service_by_name.get(name_or_arn) {
            Some(list) => list,
            None => self.service_by_name.get(short_name(name_or_arn))?,
        };
        self.live_service_in(cluster, in_clusters)
    }

    pub fn service(&self, cluster: u32, name_or_arn: &str) -> Option<u32> {
        self.live_service_in(cluster, self.service_by_name.get(short_name(name_or_arn))?)
    }

    /// Of the services of one name (one per cluster), the one in `cluster`, unless
    /// deleted.
    fn live_service_in(&self, cluster: u32, in_clusters: &[(u32, u32)]) -> Option<u32> {
        in_clusters
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

    pub fn task_def_arn(&self, td: u32) -> &Name {
        &self.task_defs[td as usize].arn
    }
}

impl World {
    pub(crate) fn create_cluster(&mut self, name: &Name) -> u32 {
        if let Some(c) = self.ecs.cluster(name) {
            return c;
        }
        let ix = self.ecs.clusters.len() as u32;
        let name = short_name_of(name);
        self.ecs.clusters.push(Cluster {
            name: name.clone(),
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}").into(),
        });
        self.ecs.cluster_by_name.insert(name, ix);
        ix
    }

    /// Register a revision in `family` (RegisterTaskDefinition: always a new revision).
    pub(crate) fn add_task_def(
        &mut self,
        family: &str,
        container: &str,
        image: &str,
        tags: Option<(Name, Name)>,
        app: AppIx,
    ) -> u32 {
        let revisions = self.ecs.families.entry(Name::from(family)).or_default();
        let revision = revisions.len() as u32 + 1;
        let ix = self.ecs.task_defs.len() as u32;
        revisions.push(ix);
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}");
        self.ecs.td_by_arn.insert(arn.clone().into(), ix);
        self.ecs
            .td_by_arn
            .insert(format!("{family}:{revision}").into(), ix);
        self.ecs.task_defs.push(TaskDef {
            arn: arn.into(),
            family: Name::from(family),
            revision,
            container: Name::from(container),
            image: Name::from(image),
            tags,
            app,
        });
        ix
    }

    pub(crate) fn create_service(
        &mut self,
        cluster: u32,
        name: &Name,
        app: AppIx,
        external: bool,
        td: Option<u32>,
        tg: Option<u32>,
    ) -> u32 {
        let ix = self.ecs.services.len() as u32;
        let cname = self.ecs.clusters[cluster as usize].name.clone();
        let name = short_name_of(name);
        self.ecs.services.push(Service {
            name: name.clone(),
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cname}/{name}").into(),
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
            .entry(name)
            .or_default()
            .push((cluster, ix));
        ix
    }

    pub(crate) fn add_task_set(
        &mut self,
        service: u32,
        td: u32,
        tg: u32,
        external_id: Option<Name>,
        client_token: Option<Name>,
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
        self.ecs.task_set_by_arn.insert(arn.clone().into(), ix);
        self.ecs.task_set_by_arn.insert(id.clone().into(), ix);
        self.ecs.task_sets.push(TaskSet {
            id: id.into(),
            arn: arn.into(),
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
            status: self.ecs.words.task_set_state(t.state),
            external_id: t.external_id.clone(),
            task_definition: self.ecs.task_def_arn(t.td).clone(),
            target_groups: self.elb.target_groups[t.tg as usize].arn_list.clone(),
            computed_desired_count: desired,
            running_count: running,
            pending_count: pending,
            stability_status: if running == desired && pending == 0 {
                self.ecs.words.steady.clone()
            } else {
                self.ecs.words.stabilizing.clone()
            },
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
            status: if svc.deleted {
                self.ecs.words.inactive.clone()
            } else {
                self.ecs.words.active.clone()
            },
            desired_count: svc.desired,
            running_count: running,
            pending_count: pending,
            task_definition: svc.td.filter(|_| !svc.external).map_or_else(
                || self.ecs.words.empty.clone(),
                |td| self.ecs.task_def_arn(td).clone(),
            ),
            target_groups: svc.tg.map_or_else(
                || self.ecs.words.no_target_groups.clone(),
                |tg| self.elb.target_groups[tg as usize].arn_list.clone(),
            ),
            task_sets,
            failed_tasks,
            also: None,
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
