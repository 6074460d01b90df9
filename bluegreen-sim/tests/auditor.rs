//! The auditor catches every invariant of DESIGN §4 when fed a deliberately wrong
//! command sequence — driven by hand against the world, as a buggy controller would —
//! and stays quiet for the right sequence (so a pass means something).

use bluegreen_core::{
    Command, CommandId, CommandKind, CommandResult, DeploymentId, EnsureGreen, EnvironmentModel,
    Observe, OperatorRequest, PhaseName, Reason, ReasonKind, TargetWeight, Timestamp,
};
use bluegreen_sim::auditor::{Auditor, DeploymentInfo, Invariant};
use bluegreen_sim::harness::{AppPlan, CrashPlan, app_draft};
use bluegreen_sim::world::SpanMs;
use bluegreen_sim::{Profile, Scenario, Sim, SimOptions, World, WorldProfile};

const T0: u64 = 1_800_000_000_000;
const DETECTION_MS: u64 = 60_000;

/// A world with apps, an auditor, and a hand-driven "controller".
struct Rig {
    w: World,
    a: Auditor,
    order: u64,
    ids: Vec<String>,
}

impl Rig {
    fn new(drafts: &[bluegreen_core::SpecDraft]) -> Rig {
        let w = World::seeded(drafts, &WorldProfile::fast(), 1, Timestamp::from_millis(T0));
        Rig {
            w,
            a: Auditor::new(),
            order: 0,
            ids: Vec::new(),
        }
    }

    fn begin(&mut self, app: u16, drain_ms: u64) -> u32 {
        let dep = self.ids.len() as u32;
        let id = format!("{}-{}", self.w.apps[app as usize].name, dep + 1);
        self.ids.push(id.clone());
        self.a.begin(
            &self.w,
            dep,
            DeploymentInfo {
                id,
                app,
                drain_ms,
                detection_ms: DETECTION_MS,
                look_grace_ms: 0,
            },
        );
        dep
    }

    fn exec(
        &mut self,
        dep: u32,
        step: &str,
        kind: CommandKind,
    ) -> Result<CommandResult, bluegreen_core::CommandError> {
        self.order += 1;
        let cmd = Command {
            id: CommandId::new(
                &DeploymentId::new(self.ids[dep as usize].clone()).unwrap(),
                step,
            ),
            attempt: 1,
            kind,
        };
        let r = self.w.execute(&cmd);
        self.a.after_command(&self.w, dep, self.order);
        r
    }

    fn advance(&mut self, ms: u64) {
        let t = self.w.now().plus_ms(ms);
        self.w.advance_to(t, &mut self.a);
        self.a.check_deadlines(&self.w);
    }

    fn tg(&self, app: usize, slot: usize) -> bluegreen_core::Name {
        self.w.elb.target_groups[self.w.apps[app].target_groups[slot] as usize]
            .arn
            .clone()
    }

    fn weights(&self, app: usize, blue: u32, green: u32) -> CommandKind {
        CommandKind::SetListenerWeights {
            listener: draft_of(&self.w, app).listener,
            weights: vec![
                TargetWeight {
                    target_group: self.tg(app, 0),
                    weight: blue,
                },
                TargetWeight {
                    target_group: self.tg(app, 1),
                    weight: green,
                },
            ],
        }
    }

    fn scale(&self, app: usize, slot: usize, n: u32) -> CommandKind {
        let svc = &self.w.ecs.services[self.w.apps[app].services[slot] as usize];
        CommandKind::ScaleEnvironment {
            cluster: "prod".into(),
            service: svc.name.clone(),
            desired_count: n,
        }
    }

    fn green_up(&mut self, dep: u32, app: usize) {
        let td = self.w.ecs.task_def_arn(0).to_string();
        let svc = self.w.ecs.services[self.w.apps[app].services[1] as usize]
            .name
            .clone();
        self.exec(
            dep,
            "ensure-green",
            CommandKind::EnsureGreen(EnsureGreen::Service {
                cluster: "prod".into(),
                service: svc,
                task_definition: td.into(),
                desired_count: 3,
            }),
        )
        .unwrap();
        self.advance(20_000); // tasks start (1–3 s) and pass health checks (2 s)
    }

    /// The machine observes green's health (what licenses traffic).
    fn look(&mut self, dep: u32, app: usize) -> u32 {
        let tg = self.tg(app, 1);
        let r = self.exec(
            dep,
            "look",
            CommandKind::Observe(Observe::TargetHealth { target_group: tg }),
        );
        let Ok(CommandResult::Observed(bluegreen_core::Observation::TargetHealth(h))) = r else {
            panic!("{r:?}")
        };
        let tg_ix = self.w.apps[app].target_groups[1];
        self.a.told_health(dep, tg_ix, h.healthy, self.w.now());
        h.healthy
    }

    fn invariants(&self) -> Vec<Invariant> {
        self.a.violations.iter().map(|v| v.invariant).collect()
    }
}

fn draft_of(w: &World, app: usize) -> bluegreen_core::SpecDraft {
    app_draft(&w.apps[app].name)
}

#[test]
fn the_right_sequence_passes_the_audit() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.green_up(d, 0);
    assert_eq!(r.look(d, 0), 3);
    r.exec(d, "shift-0", r.weights(0, 90, 10)).unwrap();
    r.advance(60_000);
    r.look(d, 0);
    r.exec(d, "shift-1", r.weights(0, 0, 100)).unwrap();
    r.advance(31_000);
    r.exec(d, "scale-down-blue", r.scale(0, 0, 0)).unwrap();
    r.advance(10_000);
    r.a.terminal(&r.w, d, PhaseName::Completed, None);
    r.a.final_check(&r.w);
    assert!(r.a.is_clean(), "{:#?}", r.a.violations);
    assert!(r.a.checks > 5);
}

#[test]
fn weight_sent_to_green_before_it_has_healthy_targets_is_dark_traffic() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.exec(d, "shift-0", r.weights(0, 90, 10)).unwrap();
    assert!(
        r.invariants().contains(&Invariant::NoDarkTraffic),
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn weight_sent_to_green_after_being_told_it_is_dark_is_dark_traffic() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    assert_eq!(r.look(d, 0), 0);
    r.exec(d, "shift-0", r.weights(0, 50, 50)).unwrap();
    let v = &r.a.violations[0];
    assert_eq!(v.invariant, Invariant::NoDarkTraffic);
    assert!(v.detail.contains("after being told"), "{v}");
}

fn flapped_green(roll_back_after_ms: Option<u64>) -> Rig {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.green_up(d, 0);
    r.look(d, 0);
    r.exec(d, "shift-0", r.weights(0, 0, 100)).unwrap();
    r.advance(2_000);
    let tg = r.w.apps[0].target_groups[1];
    assert_eq!(
        r.w.flap_group(tg, true, 600_000),
        3,
        "blue is a warm standby: all of green may flap"
    );
    r.advance(1);
    if let Some(ms) = roll_back_after_ms {
        r.advance(ms);
        r.a.transition(d, PhaseName::Rollback, r.order);
        r.exec(d, "rollback-production", r.weights(0, 100, 0))
            .unwrap();
    }
    r.advance(DETECTION_MS + 10_000);
    r
}

#[test]
fn green_left_dark_past_the_detection_bound_with_blue_warm_is_caught() {
    let r = flapped_green(None);
    let v = &r.a.violations;
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].invariant, Invariant::NoDarkTraffic);
    assert!(v[0].detail.contains("no rollback"), "{}", v[0]);
}

#[test]
fn green_gone_dark_and_rolled_back_within_the_bound_is_fine() {
    let r = flapped_green(Some(DETECTION_MS / 2));
    assert!(r.a.is_clean(), "{:#?}", r.a.violations);
    assert_eq!(r.a.dark_episodes, 1);
}

#[test]
fn completing_while_blue_still_holds_tasks_breaks_one_owner_at_rest() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 0);
    r.green_up(d, 0);
    r.look(d, 0);
    r.exec(d, "shift-0", r.weights(0, 0, 100)).unwrap();
    r.a.terminal(&r.w, d, PhaseName::Completed, None);
    assert_eq!(
        r.invariants(),
        vec![Invariant::OneOwnerAtRest],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn rolling_back_without_removing_green_breaks_one_owner_at_rest() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 0);
    r.green_up(d, 0);
    r.a.transition(d, PhaseName::Rollback, r.order);
    r.a.terminal(&r.w, d, PhaseName::RolledBack, None);
    assert_eq!(
        r.invariants(),
        vec![Invariant::OneOwnerAtRest],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn scaling_blue_down_while_it_still_serves_breaks_rollback_safety() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.green_up(d, 0);
    r.look(d, 0);
    r.exec(d, "shift-0", r.weights(0, 90, 10)).unwrap();
    r.exec(d, "scale-down-blue", r.scale(0, 0, 0)).unwrap();
    let v = &r.a.violations[0];
    assert_eq!(v.invariant, Invariant::RollbackIsSafe);
    assert!(v.detail.contains("production weight 90"), "{v}");
}

#[test]
fn scaling_blue_down_before_the_drain_time_breaks_rollback_safety() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.green_up(d, 0);
    r.look(d, 0);
    r.exec(d, "shift-0", r.weights(0, 0, 100)).unwrap();
    r.advance(5_000);
    r.exec(d, "scale-down-blue", r.scale(0, 0, 0)).unwrap();
    let v = &r.a.violations[0];
    assert_eq!(v.invariant, Invariant::RollbackIsSafe);
    assert!(v.detail.contains("drain 30000 ms"), "{v}");
}

#[test]
fn a_rollback_that_removes_green_before_restoring_production_is_caught() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 30_000);
    r.green_up(d, 0);
    r.look(d, 0);
    r.exec(d, "shift-0", r.weights(0, 90, 10)).unwrap();
    r.a.transition(d, PhaseName::Rollback, r.order);
    r.exec(d, "rollback-scale-green", r.scale(0, 1, 0)).unwrap();
    let v = &r.a.violations[0];
    assert_eq!(v.invariant, Invariant::RollbackIsSafe);
    assert!(
        v.detail
            .contains("before production was back to 100 % blue"),
        "{v}"
    );
}

#[test]
fn registering_one_image_twice_is_a_duplicate_revision() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 0);
    let base = r.w.ecs.task_def_arn(0).to_string();
    let register = CommandKind::RegisterTaskDefinition {
        base: base.into(),
        container: "app".into(),
        image: "registry.example/web:v2".into(),
    };
    r.exec(d, "register-task-definition", register.clone())
        .unwrap();
    assert!(r.a.is_clean());
    r.exec(d, "register-task-definition", register).unwrap();
    assert_eq!(
        r.invariants(),
        vec![Invariant::NoLeaksNoDuplicates],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn creating_a_second_green_task_set_is_a_duplicate() {
    let mut draft = app_draft("web");
    draft.environment = EnvironmentModel::TaskSet {
        service: "web".into(),
    };
    let mut r = Rig::new(&[draft]);
    let d = r.begin(0, 0);
    let blue_ts = r.w.ecs.task_sets[0].arn.clone();
    let create = |tg: bluegreen_core::Name, td: bluegreen_core::Name| {
        CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: td,
            target_group: tg,
            like_task_set: blue_ts.clone(),
            external_id: "web-1".into(),
        })
    };
    let (tg, td) = (r.tg(0, 1), r.w.ecs.task_def_arn(0).clone());
    // Same step twice: the client token makes it one task set.
    r.exec(d, "ensure-green", create(tg.clone(), td.clone()))
        .unwrap();
    r.exec(d, "ensure-green", create(tg.clone(), td.clone()))
        .unwrap();
    assert!(r.a.is_clean(), "{:#?}", r.a.violations);
    // A new step (a new token) after a crash that forgot the first: a second green.
    r.exec(d, "ensure-green-again", create(tg, td)).unwrap();
    assert_eq!(
        r.invariants(),
        vec![Invariant::NoLeaksNoDuplicates],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn a_rejected_deployment_that_changed_the_world_is_caught() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 0);
    r.green_up(d, 0);
    r.a.terminal(&r.w, d, PhaseName::Rejected, None);
    assert_eq!(
        r.invariants(),
        vec![Invariant::NoLeaksNoDuplicates],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn a_second_deployment_of_a_running_app_is_caught() {
    let mut r = Rig::new(&[app_draft("web")]);
    r.begin(0, 0);
    r.begin(0, 0);
    assert_eq!(r.invariants(), vec![Invariant::OneDeploymentPerApp]);
}

#[test]
fn a_deployment_writing_another_apps_listener_is_caught() {
    let mut r = Rig::new(&[app_draft("web"), app_draft("api")]);
    let d = r.begin(0, 0);
    r.exec(d, "shift-0", r.weights(1, 100, 0)).unwrap();
    assert_eq!(
        r.invariants(),
        vec![Invariant::OneDeploymentPerApp],
        "{:#?}",
        r.a.violations
    );
}

#[test]
fn a_machine_that_stops_itself_is_reported() {
    let mut r = Rig::new(&[app_draft("web")]);
    let d = r.begin(0, 0);
    let reason = Reason::new(ReasonKind::Invariant, "two writes in flight");
    r.a.terminal(&r.w, d, PhaseName::Failed, Some(&reason));
    assert_eq!(r.invariants(), vec![Invariant::MachineInvariant]);
}

#[test]
fn the_same_seed_gives_the_same_trace_and_a_changed_run_does_not() {
    let opts = SimOptions {
        trace_text: true,
        ..SimOptions::default()
    };
    let a = Sim::run_seed(11, Profile::Fast, opts);
    let b = Sim::run_seed(11, Profile::Fast, opts);
    assert_eq!((a.trace_hash, a.text_hash), (b.trace_hash, b.text_hash));
    assert_eq!(a.trace_lines, b.trace_lines);
    // The same scenario with one thing changed (a push a second later) is told apart.
    let mut s = Scenario::draw(11, Profile::Fast);
    s.apps[0].pushes[0].at_ms += 1_000;
    let c = Sim::new(s, opts).run();
    assert_ne!(a.trace_hash, c.trace_hash);
    assert_ne!(a.text_hash, c.text_hash);
}

#[test]
fn a_controller_that_never_comes_back_breaks_liveness() {
    let mut s = Scenario::quiet(5, WorldProfile::fast());
    s.apps.push(AppPlan::new(
        app_draft("web"),
        &[(0, "registry.example/web:v2")],
    ));
    // The controller dies and its restart takes a year.
    s.crash = CrashPlan {
        mean_ms: 0,
        restart_ms: SpanMs::fixed(365 * 86_400_000),
        before_send: 0.0,
        on_response: 0.0,
    };
    let mut sim = Sim::new(s, SimOptions::default());
    assert!(sim.run_until(|s| s.phase_of(0) == Some(PhaseName::Deploy)));
    sim.crash_on_answer_to(0, "");
    let r = sim.run();
    assert_eq!(
        r.violations.iter().map(|v| v.invariant).collect::<Vec<_>>(),
        vec![Invariant::Liveness],
        "{:#?}",
        r.violations
    );
}

#[test]
fn operator_requests_go_through_the_machines_guard() {
    let mut s = Scenario::quiet(5, WorldProfile::fast());
    s.apps.push(AppPlan::new(
        app_draft("web"),
        &[(0, "registry.example/web:v2")],
    ));
    let mut sim = Sim::new(s, SimOptions::default());
    assert!(sim.run_until(|s| s.phase_of(0) == Some(PhaseName::Deploy)));
    // Promote has nothing to end in deploy: refused (409), the deployment goes on.
    sim.operator(0, OperatorRequest::Promote);
    let r = sim.run();
    assert!(r.ok(), "{:#?}", r.violations);
    assert_eq!(r.deployments[0].outcome, Some(PhaseName::Completed));
}
