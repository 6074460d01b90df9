//! Properties over random interleavings of results, faults, crashes and operator inputs,
//! judged from outside the machine against the world it drives:
//! - no command sends weight to green before green was observed healthy (after the
//!   previous listener write);
//! - blue is never scaled down while it has weight, nor before the drain time since it
//!   lost its last weight;
//! - a twin serialised and restored at every step produces the same outputs;
//! - once the world answers healthily, a terminal phase is always reached, and it leaves
//!   the world at rest (one side 100 % and the other holding no tasks).

mod support;

use proptest::prelude::{Just, ProptestConfig, any, prop, prop_oneof, proptest};
use proptest::strategy::Strategy as Gen;

use bluegreen_core::*;
use support::*;

#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    Retryable,
    AmbiguousApplied,
    AmbiguousLost,
    Fatal,
}

#[derive(Clone, Debug)]
enum Act {
    Answer(Answer),
    Operator(OperatorRequest),
    /// The controller dies; its commands in flight are lost (those already applied stay
    /// applied), and it restarts from its last serialised state.
    Crash {
        applied: bool,
    },
    GreenHealthy(Option<u32>),
    Alarm(bool),
    FailedTasks(u32),
    /// Let time pass to the machine's next timer.
    Wait,
}

fn act() -> impl Gen<Value = Act> {
    let answer = prop_oneof![
        60 => Just(Answer::Ok),
        12 => Just(Answer::Retryable),
        5 => Just(Answer::AmbiguousApplied),
        5 => Just(Answer::AmbiguousLost),
        1 => Just(Answer::Fatal),
    ];
    let op = prop_oneof![
        Just(OperatorRequest::Promote),
        Just(OperatorRequest::Abort { reason: None }),
        Just(OperatorRequest::Pause),
        Just(OperatorRequest::Resume),
    ];
    prop_oneof![
        60 => answer.prop_map(Act::Answer),
        3 => op.prop_map(Act::Operator),
        2 => any::<bool>().prop_map(|applied| Act::Crash { applied }),
        3 => prop::option::of(0u32..=3).prop_map(Act::GreenHealthy),
        1 => any::<bool>().prop_map(Act::Alarm),
        1 => (0u32..4).prop_map(Act::FailedTasks),
        15 => Just(Act::Wait),
    ]
}

fn spec_strategy() -> impl Gen<Value = DeploymentSpec> {
    (0usize..3, any::<bool>(), any::<bool>()).prop_map(|(strategy, task_set, full)| {
        let f = move |d: &mut SpecDraft| {
            d.strategy = match strategy {
                0 => Strategy::AllAtOnce,
                1 => Strategy::Canary {
                    percent: 10,
                    wait_ms: 20_000,
                },
                _ => Strategy::Linear {
                    step_percent: 40,
                    interval_ms: 10_000,
                },
            };
            if task_set {
                task_set_model(d);
            }
            d.bake_ms = 10_000;
            d.drain_ms = 5_000;
            d.timeouts.approval_ms = 300_000;
            d.timeouts.deploy_ms = 120_000;
            d.timeouts.health_ms = 120_000;
            d.timeouts.scale_down_ms = 120_000;
        };
        if full { full_spec(f) } else { spec(f) }
    })
}

/// The world plus the outside observer's memory.
struct Judge {
    w: World,
    /// Last green target-health answer delivered to the machine, and whether it came after
    /// the last listener write was acknowledged.
    green_seen_healthy_since_write: bool,
    green_seen_healthy_ever: bool,
    /// When the world's production listener last gave blue weight.
    blue_last_weighted_at: Option<Timestamp>,
    blue_weighted_now: bool,
    /// Recent events, printed when a property fails.
    trail: std::collections::VecDeque<String>,
}

impl Judge {
    fn note(&mut self, s: String) {
        if self.trail.len() >= 60 {
            self.trail.pop_front();
        }
        self.trail.push_back(s);
    }

    fn trail(&self) -> String {
        self.trail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Judge {
    fn before_apply(&mut self, c: &Command, now: Timestamp, spec: &DeploymentSpec) {
        let green_tg = &spec.target_groups[1];
        match &c.kind {
            CommandKind::SetListenerWeights { weights, .. } => {
                let to_green: u32 = weights
                    .iter()
                    .filter(|w| &w.target_group == green_tg)
                    .map(|w| w.weight)
                    .sum();
                if to_green > 0 {
                    assert!(
                        self.green_seen_healthy_ever,
                        "green weight before green was ever observed healthy: {c:?}\n{}",
                        self.trail()
                    );
                    assert!(
                        self.green_seen_healthy_since_write,
                        "green weight without a healthy observation since the last listener write: {c:?}\n{}",
                        self.trail()
                    );
                }
            }
            CommandKind::ScaleEnvironment {
                service,
                desired_count: 0,
                ..
            } if service == "web-a" => {
                self.assert_blue_removable(now, spec);
            }
            CommandKind::DeleteEnvironment { task_set, .. } if task_set.ends_with("ts-blue") => {
                self.assert_blue_removable(now, spec);
            }
            _ => {}
        }
    }

    fn assert_blue_removable(&self, now: Timestamp, spec: &DeploymentSpec) {
        assert!(
            !self.blue_weighted_now,
            "blue scaled down while it has production weight"
        );
        let since = self
            .blue_last_weighted_at
            .expect("blue had weight at the start");
        assert!(
            now.ms_since(since) >= spec.drain_ms,
            "blue scaled down {} ms after its last weight (drain {} ms)",
            now.ms_since(since),
            spec.drain_ms
        );
    }

    fn after_apply(
        &mut self,
        c: &Command,
        result: &Result<CommandResult, CommandError>,
        now: Timestamp,
        spec: &DeploymentSpec,
        delivered: bool,
    ) {
        let (b, g) = self.w.prod_weights();
        let _ = g;
        if b > 0 {
            self.blue_last_weighted_at = Some(now);
            self.blue_weighted_now = true;
        } else {
            self.blue_weighted_now = false;
        }
        let short = |r: &Result<CommandResult, CommandError>| match r {
            Ok(CommandResult::Observed(Observation::TargetHealth(h))) => {
                format!("healthy {}", h.healthy)
            }
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{:?}", e.class),
        };
        self.note(format!(
            "{now} {} #{} -> {} (delivered {delivered})",
            c.id,
            c.attempt,
            short(result)
        ));
        if !delivered {
            return;
        }
        match (&c.kind, result) {
            (CommandKind::SetListenerWeights { .. }, _) => {
                self.green_seen_healthy_since_write = false
            }
            (
                CommandKind::Observe(Observe::TargetHealth { target_group }),
                Ok(CommandResult::Observed(Observation::TargetHealth(h))),
            ) if target_group == &spec.target_groups[1] => {
                self.green_seen_healthy_since_write = h.healthy > 0;
                self.green_seen_healthy_ever |= h.healthy > 0;
            }
            _ => {}
        }
    }
}

struct Pair {
    a: Deployment,
    b: Deployment,
}

impl Pair {
    fn handle(&mut self, now: Timestamp, input: Input) {
        let ra = self.a.handle(now, input.clone());
        let rb = self.b.handle(now, input);
        assert_eq!(ra, rb, "the restored twin decided differently on an input");
        self.b = serde_json::from_str(&serde_json::to_string(&self.b).unwrap()).unwrap();
        assert_eq!(self.a, self.b, "a serde round trip changed the state");
    }

    fn poll(&mut self, now: Timestamp) -> Output {
        let oa = self.a.poll(now);
        let ob = self.b.poll(now);
        assert_eq!(oa, ob, "the restored twin produced a different output");
        self.b = serde_json::from_str(&serde_json::to_string(&self.b).unwrap()).unwrap();
        oa
    }
}

fn run(spec: DeploymentSpec, script: Vec<Act>) {
    let id = DeploymentId::new("prop-1").unwrap();
    let mut now = START;
    let d = Deployment::new(id, spec.clone(), now);
    let mut m = Pair { a: d.clone(), b: d };
    let mut j = Judge {
        w: World::new(&spec),
        green_seen_healthy_since_write: false,
        green_seen_healthy_ever: false,
        blue_last_weighted_at: Some(now),
        blue_weighted_now: true,
        trail: Default::default(),
    };
    let mut pending: std::collections::VecDeque<std::sync::Arc<Command>> = Default::default();
    let mut wake_at: Option<Timestamp> = Some(now);

    let drain = |m: &mut Pair,
                 pending: &mut std::collections::VecDeque<std::sync::Arc<Command>>,
                 now: Timestamp|
     -> Option<Timestamp> {
        for _ in 0..10_000 {
            match m.poll(now) {
                Output::Command(c) => pending.push_back(c),
                Output::Notice(_) => {}
                Output::Idle { wake_at } => return wake_at,
            }
        }
        panic!("the machine never went idle");
    };
    m.handle(now, Input::Wake);
    wake_at = drain(&mut m, &mut pending, now).or(wake_at);

    // `accepted`: the machine still has this id in flight, so it will believe the answer
    // (a duplicate answer to a retried id is discarded by the machine and must not count).
    let answer = |j: &mut Judge,
                  c: &Command,
                  how: Answer,
                  now: Timestamp,
                  accepted: bool|
     -> Option<Result<CommandResult, CommandError>> {
        j.before_apply(c, now, &spec);
        let (result, delivered) = match how {
            Answer::Ok => (j.w.respond(c), accepted),
            Answer::Retryable => (Err(err(ErrorClass::Retryable, "Throttling")), accepted),
            Answer::AmbiguousApplied => {
                let _ = j.w.respond(c);
                (Err(err(ErrorClass::Ambiguous, "Lost")), accepted)
            }
            Answer::AmbiguousLost => (Err(err(ErrorClass::Ambiguous, "Lost")), accepted),
            Answer::Fatal => (Err(err(ErrorClass::Fatal, "Denied")), accepted),
        };
        j.after_apply(c, &result, now, &spec, delivered);
        Some(result)
    };

    // Safety phase: the script.
    for a in script {
        match a {
            Act::Answer(how) => {
                if let Some(c) = pending.pop_front() {
                    let accepted = m.a.in_flight().any(|f| f.id == c.id);
                    if let Some(result) = answer(&mut j, &c, how, now, accepted) {
                        m.handle(
                            now,
                            Input::CommandDone {
                                id: c.id.clone(),
                                result,
                            },
                        );
                    }
                } else if let Some(t) = wake_at {
                    now = now.max(t);
                    m.handle(now, Input::Wake);
                }
            }
            Act::Operator(req) => {
                j.note(format!("{now} operator {req:?}"));
                m.handle(now, Input::Operator(req))
            }
            Act::Crash { applied } => {
                j.note(format!("{now} crash (applied {applied})"));
                if applied && let Some(c) = pending.front().cloned() {
                    j.before_apply(&c, now, &spec);
                    let r = j.w.respond(&c);
                    j.after_apply(&c, &r, now, &spec, false);
                }
                pending.clear();
                m.handle(now, Input::Restarted);
            }
            Act::GreenHealthy(h) => {
                j.note(format!("{now} world: green healthy {h:?}"));
                j.w.green_healthy = h
            }
            Act::Alarm(on) => {
                j.w.alarms_in_alarm = if on { vec!["web-5xx".into()] } else { vec![] };
            }
            Act::FailedTasks(n) => j.w.failed_tasks = n,
            Act::Wait => {
                if let Some(t) = wake_at {
                    now = now.max(t);
                    m.handle(now, Input::Wake);
                }
            }
        }
        wake_at = drain(&mut m, &mut pending, now);
    }

    // Liveness phase: faults heal, the world answers healthily, an approval is given.
    j.w.green_healthy = None;
    j.w.alarms_in_alarm.clear();
    j.w.failed_tasks = 0;
    let deadline = now.plus_ms(48 * 3_600_000);
    let mut steps = 0u32;
    // An operator answers a gate once; then time must pass (a retry may be pending).
    let mut asked = false;
    while !m.a.is_terminal() {
        steps += 1;
        assert!(
            steps < 200_000 && now < deadline,
            "no terminal phase within the bound: {:?}",
            m.a.status()
        );
        if let Some(c) = pending.pop_front() {
            let accepted = m.a.in_flight().any(|f| f.id == c.id);
            let result = answer(&mut j, &c, Answer::Ok, now, accepted).unwrap();
            m.handle(
                now,
                Input::CommandDone {
                    id: c.id.clone(),
                    result,
                },
            );
        } else if m.a.phase_name() == PhaseName::Approval && !asked {
            asked = true;
            m.handle(now, Input::Operator(OperatorRequest::Promote));
        } else if m.a.phase_name() == PhaseName::Paused && !asked {
            asked = true;
            m.handle(now, Input::Operator(OperatorRequest::Resume));
        } else {
            asked = false;
            match wake_at {
                Some(t) => {
                    now = now.max(t);
                    m.handle(now, Input::Wake);
                }
                None => panic!("idle forever in {:?}", m.a.phase_name()),
            }
        }
        wake_at = drain(&mut m, &mut pending, now);
    }

    // At rest: one side serves 100 %, the other holds nothing.
    match m.a.phase_name() {
        PhaseName::Completed => {
            assert_eq!(j.w.prod_weights().0, 0);
            assert_eq!(j.w.tasks(0), 0, "blue holds tasks after completion");
            assert!(j.w.tasks(1) > 0);
        }
        PhaseName::RolledBack => {
            assert_eq!(j.w.prod_weights().1, 0, "green keeps weight after rollback");
            assert_eq!(j.w.tasks(1), 0, "green holds tasks after rollback");
            assert!(j.w.tasks(0) > 0);
        }
        PhaseName::Rejected => {
            assert_eq!(j.w.prod_weights().1, 0);
            assert_eq!(j.w.tasks(1), 0);
        }
        // Fatal answers inside rollback can end in Failed; it must say what to do.
        PhaseName::Failed => {
            let Phase::Failed {
                action_required, ..
            } = m.a.phase()
            else {
                unreachable!()
            };
            assert!(!action_required.is_empty());
        }
        other => panic!("not terminal: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn safety_determinism_and_liveness_under_random_interleavings(
        spec in spec_strategy(),
        script in prop::collection::vec(act(), 0..400),
    ) {
        run(spec, script);
    }
}

#[test]
fn a_healthy_world_with_no_faults_always_completes() {
    for full in [false, true] {
        let s = if full {
            full_spec(|_| {})
        } else {
            spec(|_| {})
        };
        let mut r = Run::new(s);
        r.until(|r| r.d.phase_name() == PhaseName::Approval || r.d.is_terminal());
        if r.d.phase_name() == PhaseName::Approval {
            r.operator(OperatorRequest::Promote).unwrap();
        }
        r.finish();
        assert_eq!(r.d.phase_name(), PhaseName::Completed);
    }
}
