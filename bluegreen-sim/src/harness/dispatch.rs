//! Commands on the wire: the fault rules' verdict when sent, the world applying them
//! when they arrive, the answer (or its loss) on the way back — and stale reads served
//! from what an earlier identical read answered.

use bluegreen_core::ids::stable_hash64_with;
use std::collections::BTreeMap;

use bluegreen_core::budget::{Cost, Role};
use bluegreen_core::{
    Command, CommandError, CommandKind, CommandResult, Input, Observation, Observe, Timestamp,
};

use super::alarms::after_rollback_listener_write;
use super::{Ev, Pending, Sim};
use crate::faults::Verdict;
use crate::world::HookOutcome;

/// A lost answer surfaces as a client-side timeout this long after the request.
pub(crate) const LOST_ANSWER_MS: u64 = 5_000;
/// The longest the API budget holds a command: half the machine's wait for its
/// answer, so one that goes out still arrives (a network leg later) well before the
/// machine would give up on it.
pub(crate) fn budget_hold_ms_max(command_ms: u64) -> u64 {
    command_ms / 2
}

/// Stale answers remembered (one per read key).
const STALE_KEYS_MAX: usize = 4_096;

impl Sim {
    fn leg_ms(&mut self) -> u64 {
        let l = self.scenario.latency_ms;
        self.rng.range(l.lo, l.hi)
    }

    fn alloc(&mut self, p: Pending) -> u32 {
        match self.free_slots.pop() {
            Some(s) => {
                self.pending[s as usize] = Some(p);
                s
            }
            None => {
                self.pending.push(Some(p));
                (self.pending.len() - 1) as u32
            }
        }
    }

    /// Send one command. `false`: the controller crashed before it went out.
    pub(crate) fn send(&mut self, dep: u32, command: std::sync::Arc<Command>, order: u64) -> bool {
        let crash = self.scenario.crash;
        if !self.healed && crash.before_send > 0.0 && self.rng.chance(crash.before_send) {
            self.crash(dep, "after persisting, before sending its commands");
            return false;
        }
        let verdict = self.scenario.rules.verdict(&command);
        let d = &mut self.deps[dep as usize];
        d.commands += 1;
        let incarnation = d.incarnation;
        self.trace.mix(&[
            10,
            u64::from(dep),
            crate::trace::text_word(command.id.as_bytes()) ^ u64::from(command.attempt),
            verdict_tag(&verdict),
        ]);
        if self.trace.wants_text() {
            let id = command.id.clone();
            let (name, attempt) = (command.kind.name(), command.attempt);
            let v = verdict.clone();
            self.trace.line(self.now, || {
                let fault = match v {
                    Verdict::Pass => String::new(),
                    other => format!(" [fault: {other:?}]"),
                };
                format!("  send {id} {name} attempt {attempt}{fault}")
            });
        }
        self.after_alarm_event_send(dep);
        let role = self.deps[dep as usize]
            .machine
            .as_ref()
            .map_or(Role::Forward, |m| Role::of_phase(m.phase_name()));
        let slot = self.alloc(Pending {
            dep,
            incarnation,
            command,
            verdict,
            order,
            result: None,
            gated: None,
        });
        self.gate_or_go(slot, role);
        true
    }

    /// Take the command's cost from the API budget and put it on the wire, or queue it
    /// until the budget can give it (a rollback's ahead of forward progress).
    fn gate_or_go(&mut self, slot: u32, role: Role) {
        let Some(p) = self.pending[slot as usize].as_ref() else {
            return;
        };
        if self.budget.is_none() {
            self.put_on_wire(slot);
            return;
        }
        let cost = Cost::of_command(&p.command.kind);
        // Forward commands queue behind earlier ones that take from the same buckets
        // (first come, first served, as the service's budget does); a rollback's go
        // ahead of them.
        let behind = role == Role::Forward
            && self.budget_queue.iter().any(|&s| {
                self.pending[s as usize]
                    .as_ref()
                    .is_some_and(|q| Cost::of_command(&q.command.kind).shares_bucket_with(&cost))
            });
        let budget = self.budget.as_mut().expect("checked above");
        let ready_at = if cost.total() == 0 {
            None
        } else if behind {
            Some(self.now)
        } else {
            budget.try_take(self.now, cost, role).err()
        };
        let Some(ready_at) = ready_at else {
            self.put_on_wire(slot);
            return;
        };
        let Some(p) = self.pending[slot as usize].as_mut() else {
            return;
        };
        p.gated = Some((self.now, role));
        let hold_until = self.now.plus_ms(budget_hold_ms_max(
            self.deps[p.dep as usize].spec.timeouts.command_ms,
        ));
        self.trace
            .mix(&[13, u64::from(p.dep), ready_at.as_millis()]);
        match role {
            Role::Rollback => self.budget_queue.push_front(slot),
            Role::Forward => self.budget_queue.push_back(slot),
        }
        // Its own deadline: answered unsent if still queued then.
        self.queue_push(hold_until, Ev::Gate { slot });
        self.schedule_budget_scan(ready_at);
    }

    /// The request leaves: it reaches the world a network leg from now.
    fn put_on_wire(&mut self, slot: u32) {
        let leg = self.leg_ms();
        self.queue_push(self.now.plus_ms(leg), Ev::Arrive { slot });
    }

    fn schedule_budget_scan(&mut self, at: Timestamp) {
        let at = at.max(self.now);
        if self.budget_scan_at.is_none_or(|t| at < t) {
            self.budget_scan_at = Some(at);
            self.queue_push(at, Ev::BudgetScan { at });
        }
    }

    /// Let queued commands go while the budget gives: rollbacks first, then in order.
    /// A command whose bucket is still short does not hold up one that needs another
    /// bucket, but a later forward command of the same bucket waits behind it (else a
    /// large cost, a preflight's, starves behind small polls); the scan stops after a
    /// few misses (bounded work per event).
    pub(crate) fn budget_scan(&mut self, at: Timestamp) {
        if self.budget_scan_at != Some(at) {
            return; // superseded by an earlier scan
        }
        self.budget_scan_at = None;
        const MISSES_MAX: usize = 16;
        let mut misses = 0;
        let mut next: Option<Timestamp> = None;
        // Forward commands that could not go yet: later ones of their buckets wait.
        let mut short: Vec<Cost> = Vec::new();
        let mut i = 0;
        while i < self.budget_queue.len() && misses < MISSES_MAX {
            let slot = self.budget_queue[i];
            let Some(p) = self.pending[slot as usize].as_ref() else {
                self.budget_queue.remove(i);
                continue;
            };
            let d = &self.deps[p.dep as usize];
            if d.incarnation != p.incarnation || d.machine.is_none() {
                // A crashed controller never sent it; the restarted one resolves it.
                self.budget_queue.remove(i);
                self.pending[slot as usize] = None;
                self.free_slots.push(slot);
                continue;
            }
            // A rollback that began while the command waited makes it the rollback's.
            let queued_as = p.gated.map_or(Role::Forward, |(_, role)| role);
            let role = d
                .machine
                .as_ref()
                .map_or(queued_as, |m| Role::of_phase(m.phase_name()).max(queued_as));
            let cost = Cost::of_command(&p.command.kind);
            if role == Role::Forward && short.iter().any(|c| c.shares_bucket_with(&cost)) {
                misses += 1;
                i += 1;
                continue;
            }
            let budget = self.budget.as_mut().expect("a queue implies a budget");
            match budget.try_take(self.now, cost, role) {
                Ok(()) => {
                    self.budget_queue.remove(i);
                    if let Some(p) = self.pending[slot as usize].as_mut()
                        && let Some((since, role)) = p.gated.take()
                    {
                        let dep = p.dep;
                        self.count_wait(dep, since, role, false);
                    }
                    self.put_on_wire(slot);
                }
                Err(ready_at) => {
                    next = Some(next.map_or(ready_at, |n| n.min(ready_at)));
                    if role == Role::Forward {
                        short.push(cost);
                    }
                    misses += 1;
                    i += 1;
                }
            }
        }
        if !self.budget_queue.is_empty() {
            // Misses set the time; past the scan's bound, try again at once.
            self.schedule_budget_scan(next.unwrap_or(self.now.plus_ms(1)));
        }
    }

    /// A command of `dep` queued since `since` left the queue: it went, or (`refused`)
    /// was answered unsent. Returns the wait.
    fn count_wait(&mut self, dep: u32, since: Timestamp, role: Role, refused: bool) -> u64 {
        let waited = self.now.ms_since(since);
        let d = &mut self.deps[dep as usize];
        d.budget_wait_ms += waited;
        d.budget_waits += 1;
        d.budget_refused += u32::from(refused);
        if role == Role::Rollback {
            d.rollback_budget_wait_ms += waited;
        }
        waited
    }

    /// The budget held a command as long as it may: it is answered, unsent, with a
    /// throttled error while the machine still waits for it — never sent late, after
    /// the machine may have given up on it and moved on (a write arriving then could
    /// undo what a rollback did).
    pub(crate) fn gate(&mut self, slot: u32) {
        let Some(p) = self.pending[slot as usize].as_mut() else {
            return;
        };
        let Some((since, role)) = p.gated else {
            return; // it went
        };
        let hold_until = since.plus_ms(budget_hold_ms_max(
            self.deps[p.dep as usize].spec.timeouts.command_ms,
        ));
        if self.now < hold_until {
            return; // the slot now holds a later command
        }
        p.gated = None;
        let dep = p.dep;
        if let Some(i) = self.budget_queue.iter().position(|&s| s == slot) {
            self.budget_queue.remove(i);
        }
        let waited = self.count_wait(dep, since, role, true);
        if let Some(p) = self.pending[slot as usize].as_mut() {
            p.result = Some(Err(CommandError::throttled(
                "BudgetExhausted",
                format!("not sent: the API budget held it for {waited} ms"),
            )));
        }
        self.trace.mix(&[14, u64::from(dep)]);
        self.queue_push(self.now, Ev::Respond { slot });
    }

    /// The request reaches AWS (or the hook's endpoint). Works on the pending command
    /// in place: commands are large, and this is the hottest path of a run.
    pub(crate) fn arrive(&mut self, slot: u32) {
        let Some(p) = self.pending[slot as usize].as_ref() else {
            return;
        };
        let (dep, order) = (p.dep, p.order);
        let mut extra_ms = 0;
        let mut answer = true;
        let result = match &p.verdict {
            Verdict::Fail(e) => Err(e.clone()),
            Verdict::Hang { applied: false } => {
                answer = false;
                Err(CommandError::retryable("Timeout", "no answer"))
            }
            v => {
                let stale = match v {
                    Verdict::Stale { max_age_ms } => {
                        stale_answer(&self.stale, self.now, &p.command, *max_age_ms)
                    }
                    _ => None,
                };
                let r = match (stale, &p.command.kind) {
                    (Some(cached), _) => Ok(cached),
                    (None, CommandKind::CallHook(call)) => match self.world.hook_outcome(call) {
                        HookOutcome::Answer { delay_ms, verdict } => {
                            extra_ms += delay_ms;
                            Ok(CommandResult::Hook(verdict))
                        }
                        HookOutcome::Error(e) => Err(e),
                        HookOutcome::Hang => {
                            answer = false;
                            Err(CommandError::retryable("Timeout", "hook hung"))
                        }
                    },
                    (None, _) => {
                        let r = self.world.execute(&p.command);
                        self.deps[dep as usize].aws_calls += u64::from(self.world.api.last_calls);
                        if r.is_ok()
                            && matches!(p.command.kind, CommandKind::SetListenerWeights { .. })
                        {
                            after_rollback_listener_write(&mut self.deps[dep as usize], self.now);
                        }
                        self.auditor.after_command(&self.world, dep, order);
                        if self.options.record_writes {
                            for effect in self.world.last_effects() {
                                self.writes.push(super::WriteRecord {
                                    at: self.now,
                                    dep,
                                    command: p.command.id.to_string(),
                                    effect: effect.clone(),
                                });
                            }
                        }
                        if self.stale_on
                            && let Ok(ok) = &r
                        {
                            remember(&mut self.stale, self.now, &p.command, ok);
                        }
                        r
                    }
                };
                match v {
                    Verdict::Lost => {
                        extra_ms += LOST_ANSWER_MS;
                        Err(CommandError::ambiguous(
                            "RequestTimeout",
                            "the request was sent but its answer was lost (injected)",
                        ))
                    }
                    Verdict::Hang { .. } => {
                        answer = false;
                        r
                    }
                    Verdict::Delay(ms) => {
                        extra_ms += ms;
                        r
                    }
                    _ => r,
                }
            }
        };
        self.trace.mix(&[
            11,
            u64::from(dep),
            u64::from(result.is_ok()),
            u64::from(answer),
        ]);
        if !answer {
            self.pending[slot as usize] = None;
            self.free_slots.push(slot);
            return;
        }
        if let Some(p) = self.pending[slot as usize].as_mut() {
            p.result = Some(result);
        }
        let leg = self.leg_ms();
        self.queue_push(self.now.plus_ms(leg + extra_ms), Ev::Respond { slot });
    }

    /// The answer reaches the controller — if it is still the one that asked.
    pub(crate) fn respond(&mut self, slot: u32) {
        let Some(p) = self.pending[slot as usize].take() else {
            return;
        };
        self.free_slots.push(slot);
        let d = &self.deps[p.dep as usize];
        if d.incarnation != p.incarnation || d.machine.is_none() {
            self.trace.mix(&[12, u64::from(p.dep)]);
            self.trace.line(self.now, || {
                format!(
                    "  answer to {} dropped: its controller is gone",
                    p.command.id
                )
            });
            return;
        }
        let triggered = self.crash_trigger.as_ref().is_some_and(|(dep, step)| {
            *dep == p.dep && p.command.id.as_str().contains(step.as_str())
        });
        if triggered {
            self.crash_trigger = None;
            self.crash(
                p.dep,
                &format!("on the answer to {}, before persisting it", p.command.id),
            );
            return;
        }
        let crash = self.scenario.crash;
        if !self.healed && crash.on_response > 0.0 && self.rng.chance(crash.on_response) {
            self.crash(p.dep, "on an answer, before persisting it");
            return;
        }
        let result = p.result.expect("answered slots carry a result");
        if let (
            CommandKind::Observe(Observe::TargetHealth { target_group }),
            Ok(CommandResult::Observed(Observation::TargetHealth(h))),
        ) = (&p.command.kind, &result)
            && let Some(tg) = self.world.elb.target_group(target_group)
        {
            self.auditor.told_health(p.dep, tg, h.healthy, self.now);
        }
        if self.trace.wants_text() {
            let what = match &result {
                Ok(r) => result_text(r),
                Err(e) => format!("error {:?} {}: {}", e.class, e.code, e.message),
            };
            let (id, cid) = (&self.deps[p.dep as usize].id, &p.command.id);
            let line = format!("  {id} <- {cid}: {what}");
            self.trace.line(self.now, || line);
        }
        self.turn(
            p.dep,
            Input::CommandDone {
                id: p.command.id.clone(),
                result,
            },
        );
    }
}

fn stale_key(command: &Command) -> Option<u64> {
    let h = |parts: &[&str]| {
        let mut x = 0x57a1e;
        for p in parts {
            x = stable_hash64_with(p.as_bytes(), x);
        }
        x
    };
    match &command.kind {
        CommandKind::Observe(Observe::Listener(l)) => Some(h(&[
            "L",
            &l.listener_arn,
            l.rule_arn.as_deref().unwrap_or(""),
        ])),
        CommandKind::Observe(Observe::Service {
            cluster,
            service,
            failures,
            also,
        }) => {
            let f = failures
                .as_ref()
                .map(|f| format!("{}@{}", f.task_definition, f.since.as_millis()))
                .unwrap_or_default();
            Some(h(&[
                "S",
                cluster,
                service,
                &f,
                also.as_deref().unwrap_or(""),
            ]))
        }
        CommandKind::Observe(Observe::TargetHealth { target_group }) => {
            Some(h(&["T", target_group]))
        }
        CommandKind::Observe(Observe::Alarms { names }) => Some(h(&["A", &names.join(",")])),
        _ => None,
    }
}

/// Remember a read's answer (a lagging replica may serve it again later).
fn remember(
    stale: &mut BTreeMap<u64, (Timestamp, CommandResult)>,
    now: Timestamp,
    command: &Command,
    result: &CommandResult,
) {
    if let Some(k) = stale_key(command)
        && (stale.len() < STALE_KEYS_MAX || stale.contains_key(&k))
    {
        stale.insert(k, (now, result.clone()));
    }
}

/// An earlier answer to the same read, if one at most `max_age_ms` old exists.
fn stale_answer(
    stale: &BTreeMap<u64, (Timestamp, CommandResult)>,
    now: Timestamp,
    command: &Command,
    max_age_ms: u64,
) -> Option<CommandResult> {
    let (at, r) = stale.get(&stale_key(command)?)?;
    (now.ms_since(*at) <= max_age_ms).then(|| r.clone())
}

fn verdict_tag(v: &Verdict) -> u64 {
    match v {
        Verdict::Pass => 0,
        Verdict::Delay(ms) => 1 ^ (ms << 8),
        Verdict::Fail(_) => 2,
        Verdict::Lost => 3,
        Verdict::Hang { applied } => 4 + u64::from(*applied),
        Verdict::Stale { .. } => 6,
    }
}

fn result_text(r: &CommandResult) -> String {
    match r {
        CommandResult::Observed(Observation::TargetHealth(h)) => format!(
            "health {} healthy, {} unhealthy, {} initial, {} draining",
            h.healthy, h.unhealthy, h.initial, h.draining
        ),
        CommandResult::Observed(Observation::Service(s)) => {
            let mut text = format!(
                "service {} desired {} running {} pending {} failed {} task sets {}",
                s.service,
                s.desired_count,
                s.running_count,
                s.pending_count,
                s.failed_tasks,
                s.task_sets.len()
            );
            if let Some(a) = &s.also {
                text.push_str(&format!(
                    "; service {} desired {} running {}",
                    a.service, a.desired_count, a.running_count
                ));
            }
            text
        }
        CommandResult::Observed(Observation::Listener(l)) | CommandResult::WeightsSet(l) => {
            let parts: Vec<String> = l
                .forwards
                .iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        bluegreen_core::arn::short_name(&f.target_group),
                        f.weight
                    )
                })
                .collect();
            format!("listener [{}]", parts.join(", "))
        }
        CommandResult::Observed(Observation::Alarms(a)) => {
            let parts: Vec<String> = a
                .alarms
                .iter()
                .map(|x| format!("{}={:?}", x.name, x.state))
                .collect();
            format!("alarms [{}]", parts.join(", "))
        }
        CommandResult::Observed(Observation::Metrics(m)) => {
            format!("metrics ({} series)", m.series.len())
        }
        other => format!("{other:?}"),
    }
}
