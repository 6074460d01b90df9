//! Deployments' lives: pushes (queued one deep per app, a newer push superseding the
//! queued one), the machine's turns, operators, controller crashes and restarts, and
//! the switch to the liveness phase.

use bluegreen_core::admission::{Decision, Next, Source, Submission};
use bluegreen_core::journal::Recorder;
use bluegreen_core::{
    Artifact, Deployment, DeploymentId, DeploymentSpec, Input, Notice, OperatorRequest, Output,
    PhaseName, Plan, Timestamp,
};

use super::{Dep, Ev, OUTPUTS_PER_TURN_MAX, Sim};
use crate::auditor::{DeploymentInfo, Invariant};

impl Sim {
    pub(crate) fn on_push(&mut self, app: u16, push: u16) {
        let a = app as usize;
        let pushes = self.scenario.apps[a].pushes.len();
        if let Some(next) = self.scenario.apps[a].pushes.get(push as usize + 1) {
            let at = self.scenario.start.plus_ms(next.at_ms);
            self.queue_push(
                at,
                Ev::Push {
                    app,
                    push: push + 1,
                },
            );
        }
        debug_assert!((push as usize) < pushes);
        let image = self.scenario.apps[a].pushes[push as usize].image.clone();
        self.trace.mix(&[1, u64::from(app), u64::from(push)]);
        let name = self.world.apps[a].name.clone();
        self.pushes_left -= 1;
        self.apps[a].next_push = push as usize + 1;
        // The push's event time is its moment in the scenario: pushes arrive in order.
        let decision = self.admit(app, push, self.now);
        let state = &mut self.apps[a];
        match decision {
            Decision::Start { id } => {
                debug_assert_eq!(id, push);
                self.start(app, push);
            }
            Decision::Queue { superseded, .. } => {
                if superseded.is_some() {
                    state.superseded += 1;
                    self.superseded += 1;
                }
                self.trace.line(self.now, || {
                    format!("{name} push {image}: queued behind the running deployment")
                });
            }
            Decision::Existing { id } => {
                self.trace.line(self.now, || {
                    format!("{name} push {image}: the same image as push {id}: nothing new")
                });
            }
            Decision::Ignored(why) => {
                self.trace.line(self.now, || {
                    format!("{name} push {image}: ignored ({})", why.label())
                });
            }
            Decision::Conflict { .. } => {
                unreachable!("pushes never conflict (only API requests do)")
            }
        }
        self.redeliver_late(app, push);
    }

    /// Submit push `push` of `app` to the app's admission value with `event_time`.
    fn admit(&mut self, app: u16, push: u16, event_time: Timestamp) -> Decision<u16> {
        let a = app as usize;
        let image = &self.scenario.apps[a].pushes[push as usize].image;
        let state = &mut self.apps[a];
        let prior = state.admitted_images.get(image).copied();
        let decision = state.admission.submit(Submission {
            id: push,
            image_key: image.clone(),
            source: Source::Push {
                event_time: Some(event_time),
            },
            prior,
        });
        if decision.created().is_some() {
            state.admitted_images.entry(image.clone()).or_insert(push);
        }
        decision
    }

    /// EventBridge retries late: now and then, the previous push arrives again with its
    /// own (older) event time after a newer one. It must never start or queue anything.
    /// Drawn from a stream of its own so every seed's other draws keep their meaning.
    fn redeliver_late(&mut self, app: u16, push: u16) {
        if push == 0 || !self.late_rng.chance(0.25) {
            return;
        }
        let earlier = push - 1;
        let at = self
            .scenario
            .start
            .plus_ms(self.scenario.apps[app as usize].pushes[earlier as usize].at_ms);
        let decision = self.admit(app, earlier, at);
        if let Some(id) = decision.created() {
            let detail = format!(
                "a late re-delivery of push {earlier} (event time {at}) was admitted as {id} after push {push}"
            );
            self.auditor.violation(
                &self.world,
                self.now,
                Invariant::OneDeploymentPerApp,
                app,
                None,
                detail,
            );
        }
    }

    pub(crate) fn start(&mut self, app: u16, push: u16) {
        let a = app as usize;
        let p = self.scenario.apps[a].pushes[push as usize].clone();
        let mut draft = self.scenario.apps[a].draft.clone();
        draft.artifact = if p.as_task_definition {
            Artifact::TaskDefinition(self.world.register_image(app, &p.image).into())
        } else {
            Artifact::Image(p.image.clone().into())
        };
        let spec = DeploymentSpec::new(draft).expect("scenario drafts are valid by construction");
        self.apps[a].started += 1;
        let name = &self.world.apps[a].name;
        let id = DeploymentId::new(format!("{name}-{}", self.apps[a].started)).expect("valid id");
        let kind = usize::from(p.as_task_definition);
        let plan_calls = match self.apps[a].plan[kind] {
            _ if self.options.no_plans => 0,
            Some(x) => x,
            None => {
                let x = Plan::for_deployment(&id, &spec).aws_calls_min;
                self.apps[a].plan[kind] = Some(x);
                x
            }
        };
        let detection_ms = self.detection_bound_ms(&spec);
        let dep = self.deps.len() as u32;
        let machine = Deployment::new(id.clone(), spec.clone(), self.now);
        let journal = self
            .options
            .journal
            .then(|| Recorder::created(&machine, self.now));
        self.auditor.begin(
            &self.world,
            dep,
            DeploymentInfo {
                id: id.to_string(),
                app,
                drain_ms: spec.drain_ms,
                detection_ms,
                look_grace_ms: self.look_grace_ms(),
            },
        );
        let liveness_deadline = self
            .healed
            .then(|| self.now.plus_ms(Sim::liveness_bound_ms(&spec)));
        self.trace.mix(&[2, u64::from(dep)]);
        self.trace.line(self.now, || {
            format!(
                "{id} begins: {} ({}, {}), detection bound {} s",
                p.image,
                spec.mode().as_str(),
                spec.strategy.name(),
                detection_ms / 1000
            )
        });
        self.deps.push(Dep {
            id,
            app,
            push,
            spec,
            machine: Some(machine),
            persisted: None,
            incarnation: 0,
            wake: None,
            started_at: self.now,
            ended_at: None,
            outcome: None,
            reason: None,
            aws_calls: 0,
            commands: 0,
            plan_calls_min: plan_calls,
            crashes: 0,
            detection_ms,
            liveness_deadline,
            liveness_reported: false,
            journal,
            alarm_fired_at: None,
            alarm_to_blue_ms: None,
            alarm_event_at: None,
            budget_wait_ms: 0,
            rollback_budget_wait_ms: 0,
            budget_waits: 0,
            budget_refused: 0,
        });
        self.apps[a].current = Some(dep);
        self.watch_alarms(dep);
        self.unfinished += 1;
        if let Some(t) = liveness_deadline {
            self.queue_push(t, Ev::Audit);
        }
        if !self.healed {
            if self.scenario.crash.mean_ms > 0 {
                let at = self
                    .now
                    .plus_ms(self.rng.exp_ms(self.scenario.crash.mean_ms));
                self.queue_push(at, Ev::Crash { dep });
            }
            if self.scenario.operator.mean_ms > 0 {
                let at = self
                    .now
                    .plus_ms(self.rng.exp_ms(self.scenario.operator.mean_ms));
                self.queue_push(at, Ev::Operator { dep, req: 255 });
            }
        }
        self.turn(dep, Input::Wake);
    }

    /// One call into the machine: `handle`, then drain `poll` until `Idle`; then send
    /// the commands it asked for.
    pub(crate) fn turn(&mut self, dep: u32, input: Input) {
        let now = self.now;
        let d = &mut self.deps[dep as usize];
        let Some(m) = d.machine.as_mut() else { return };
        let tag = input_tag(&input);
        if let Some(rec) = &mut d.journal {
            // Journaling: the recorder drives the machine (core's protocol), then the
            // outputs are handled in order.
            let outs = rec.step(m, now, input);
            self.trace.mix(&[4, u64::from(dep), tag, outs.len() as u64]);
            let mut alive = true;
            for o in outs {
                alive = self.output(dep, o, alive);
            }
        } else {
            let refused = m.handle(now, input).is_err();
            if refused {
                self.trace.mix(&[3, u64::from(dep), tag, 1]);
            }
            // Poll and handle one output at a time, in the machine's order (no buffer:
            // outputs are large). A crash before sending ends the turn.
            let mut n = 0;
            for _ in 0..OUTPUTS_PER_TURN_MAX {
                let Some(m) = self.deps[dep as usize].machine.as_mut() else {
                    break;
                };
                let o = m.poll(now);
                n += 1;
                let idle = matches!(o, Output::Idle { .. });
                if !self.output(dep, o, true) || idle {
                    break;
                }
            }
            self.trace.mix(&[4, u64::from(dep), tag, n]);
        }
        let terminal = self.deps[dep as usize]
            .machine
            .as_ref()
            .is_some_and(|m| m.is_terminal());
        if terminal && self.deps[dep as usize].outcome.is_none() {
            self.finish(dep);
        }
    }

    /// Handle one output of the machine; `false` once the controller has crashed (a
    /// fault before sending): nothing more is sent or scheduled for it.
    fn output(&mut self, dep: u32, o: Output, alive: bool) -> bool {
        self.order += 1;
        match o {
            Output::Command(c) => alive && self.send(dep, c, self.order),
            Output::Notice(n) => {
                self.notice(dep, n);
                alive
            }
            Output::Idle { wake_at } => {
                let d = &mut self.deps[dep as usize];
                if let Some(t) = wake_at
                    && alive
                    && d.wake != Some(t)
                {
                    d.wake = Some(t);
                    self.queue_push(t, Ev::Wake { dep });
                }
                alive
            }
        }
    }

    fn notice(&mut self, dep: u32, n: Notice) {
        match n {
            Notice::Transition(t) => {
                self.auditor.transition(dep, t.to, self.order);
                self.trace.mix(&[5, u64::from(dep), t.to as u64]);
                let id = &self.deps[dep as usize].id;
                self.trace.line(self.now, || {
                    format!("{id} {} -> {}: {}", t.from, t.to, t.reason)
                });
                match t.to {
                    PhaseName::Approval => {
                        let op = self.scenario.operator;
                        let timeout = self.deps[dep as usize]
                            .spec
                            .approval_timeout_ms
                            .unwrap_or(0);
                        if self.rng.chance(op.approver) {
                            let after = self.rng.range(timeout / 20, timeout * 6 / 5);
                            self.queue_push(self.now.plus_ms(after), Ev::Operator { dep, req: 0 });
                        }
                    }
                    PhaseName::Paused => {
                        let op = self.scenario.operator;
                        if self.rng.chance(op.resume) {
                            let after =
                                self.rng.range(op.resume_after_ms.lo, op.resume_after_ms.hi);
                            self.queue_push(self.now.plus_ms(after), Ev::Operator { dep, req: 2 });
                        }
                    }
                    _ => {}
                }
            }
            other => {
                if self.trace.wants_text() {
                    let id = self.deps[dep as usize].id.clone();
                    self.trace
                        .line(self.now, || format!("{id} notice {}", notice_text(&other)));
                }
            }
        }
    }

    fn finish(&mut self, dep: u32) {
        let now = self.now;
        let d = &mut self.deps[dep as usize];
        let m = d.machine.as_ref().expect("finish with a running machine");
        let phase = m.phase_name();
        let reason = m.outcome_reason().cloned();
        d.outcome = Some(phase);
        self.unfinished -= 1;
        d.reason = reason.as_ref().map(|r| r.kind);
        d.ended_at = Some(now);
        let app = d.app;
        self.trace.mix(&[6, u64::from(dep), phase as u64]);
        self.auditor
            .terminal(&self.world, dep, phase, reason.as_ref());
        let push = d.push;
        let a = &mut self.apps[app as usize];
        if a.current == Some(dep) {
            a.current = None;
        }
        // The same rules as the service: the queued push starts next, unless the
        // outcome holds the app for an operator (`Failed`).
        match a.admission.finished(&push, phase) {
            Next::Start { id } => {
                a.starting = Some(id);
                self.queue_push(now.plus_ms(1_000), Ev::Start { app });
            }
            Next::Idle | Next::Held { .. } | Next::Unchanged => {}
        }
    }

    pub(crate) fn on_operator(&mut self, dep: u32, code: u8) {
        let d = &self.deps[dep as usize];
        if d.outcome.is_some() {
            return;
        }
        let random = code == 255;
        if random {
            if self.healed {
                return;
            }
            let mean = self.scenario.operator.mean_ms;
            let at = self.now.plus_ms(self.rng.exp_ms(mean).max(1));
            self.queue_push(at, Ev::Operator { dep, req: 255 });
        }
        let code = if random {
            let w = self.scenario.operator.weights;
            let total: u32 = w.iter().sum();
            if total == 0 {
                return;
            }
            let mut x = self.rng.below(u64::from(total)) as u32;
            let mut pick = 0;
            for (i, wi) in w.iter().enumerate() {
                if x < *wi {
                    pick = i;
                    break;
                }
                x -= wi;
            }
            pick as u8
        } else {
            code
        };
        let req = match code {
            0 => OperatorRequest::Promote,
            1 => OperatorRequest::Pause,
            2 => OperatorRequest::Resume,
            _ => OperatorRequest::Abort {
                reason: Some("operator abort (simulated)".into()),
            },
        };
        if self.deps[dep as usize].machine.is_none() {
            return; // the controller is down: the request gets a 503
        }
        let id = self.deps[dep as usize].id.clone();
        self.trace
            .line(self.now, || format!("{id} operator {}", req.name()));
        self.turn(dep, Input::Operator(req));
    }

    pub(crate) fn on_crash_event(&mut self, dep: u32) {
        if self.healed || self.deps[dep as usize].outcome.is_some() {
            return;
        }
        if self.deps[dep as usize].machine.is_some() {
            self.crash(dep, "at a random moment");
        }
        let mean = self.scenario.crash.mean_ms;
        let at = self
            .now
            .plus_ms(self.scenario.crash.restart_ms.hi + self.rng.exp_ms(mean));
        self.queue_push(at, Ev::Crash { dep });
    }

    /// The controller dies: its state is what it last persisted (the end of its last
    /// turn), serialised; answers to what it had in flight will find no one.
    pub(crate) fn crash(&mut self, dep: u32, why: &str) {
        let d = &mut self.deps[dep as usize];
        let Some(m) = d.machine.take() else { return };
        d.persisted = Some(serde_json::to_string(&m).expect("a deployment always serialises"));
        d.incarnation += 1;
        d.wake = None;
        d.crashes += 1;
        // The restarted controller resumes the rollback from its persisted state; the
        // event's bound no longer applies across a crash.
        d.alarm_event_at = None;
        let id = d.id.clone();
        self.trace.mix(&[7, u64::from(dep)]);
        self.trace.line(self.now, || format!("{id} CRASH {why}"));
        let span = self.scenario.crash.restart_ms;
        let delay = if self.healed {
            span.lo
        } else {
            self.rng.range(span.lo, span.hi)
        };
        self.queue_push(self.now.plus_ms(delay), Ev::Restart { dep });
    }

    pub(crate) fn restart(&mut self, dep: u32) {
        let d = &mut self.deps[dep as usize];
        let Some(json) = d.persisted.take() else {
            return;
        };
        let m: Deployment =
            serde_json::from_str(&json).expect("a persisted deployment always restores");
        d.machine = Some(m);
        let id = d.id.clone();
        self.trace.mix(&[8, u64::from(dep)]);
        self.trace.line(self.now, || {
            format!("{id} restarts from its persisted state")
        });
        self.turn(dep, Input::Restarted);
        let paused = self.phase_of(dep) == Some(PhaseName::Paused);
        if self.healed && paused {
            self.turn(dep, Input::Operator(OperatorRequest::Resume));
        }
    }

    /// Faults stop: the liveness phase. Paused deployments are resumed (the operator is
    /// back); every unfinished deployment now has a bound to finish within.
    pub(crate) fn heal(&mut self) {
        self.healed = true;
        self.world.heal();
        self.scenario.rules.enabled = false;
        self.trace.mix(&[9]);
        self.trace
            .line(self.now, || "faults healed: liveness phase".to_string());
        for dep in 0..self.deps.len() as u32 {
            let d = &self.deps[dep as usize];
            if d.outcome.is_some() {
                continue;
            }
            let bound = Sim::liveness_bound_ms(&d.spec);
            self.deps[dep as usize].liveness_deadline = Some(self.now.plus_ms(bound));
            self.queue_push(self.now.plus_ms(bound), super::Ev::Audit);
            if self.phase_of(dep) == Some(PhaseName::Paused) {
                self.turn(dep, Input::Operator(OperatorRequest::Resume));
            }
        }
    }
}

fn input_tag(i: &Input) -> u64 {
    match i {
        Input::CommandDone { result: Ok(_), .. } => 1,
        Input::CommandDone { result: Err(_), .. } => 2,
        Input::Wake => 3,
        Input::Restarted => 4,
        Input::Operator(r) => 5 + r.name().len() as u64,
        Input::Alarm(_) => 16,
    }
}

fn notice_text(n: &Notice) -> String {
    match n {
        Notice::Transition(t) => format!("{} -> {}", t.from, t.to),
        Notice::Retrying {
            id,
            attempt,
            at,
            error,
        } => {
            format!(
                "retrying {id} (attempt {attempt}) at {at}: {} {}",
                error.code, error.message
            )
        }
        Notice::Resolving { id, error } => format!("resolving {id}: {}", error.code),
        Notice::HookAnswered { name, verdict } => format!("hook {name}: {verdict:?}"),
        Notice::RollbackHookFailed { name, reason } => {
            format!("rollback hook {name} failed: {reason}")
        }
        Notice::Operator { request } => format!("operator {} accepted", request.name()),
        Notice::AlarmEvent {
            name,
            rolled_back,
            ignored,
            ..
        } => match ignored {
            Some(why) if !rolled_back => format!("alarm event {name} ignored: {why}"),
            _ => format!("alarm event {name}: rolling back"),
        },
    }
}
