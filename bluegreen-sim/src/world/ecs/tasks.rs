//! The ECS scheduler and the task lifecycle: which environment a task belongs to, the
//! scheduler's reconcile loop, tasks starting, crashing, draining and stopping.

use bluegreen_core::Timestamp;

use super::super::elbv2::TargetState;
use super::super::{AppIx, World, WorldEvent};
use super::{
    Env, Quality, STOPPED_KEPT_MAX, StoppedTask, TASKS_PER_ENV_MAX, Task, TaskSetState, TaskStatus,
};

impl World {
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

    pub(super) fn spawn_task(&mut self, env: Env, td: u32, tg: Option<u32>) {
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
}
