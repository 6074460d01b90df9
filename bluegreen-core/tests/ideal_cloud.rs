//! The ideal cloud (`plan::IdealCloud`, `plan::drive`): the responder behind every plan,
//! the live plan's continuation of a real account, and the benches. What it answers,
//! what it takes in from real reads, and how a drive counts and stops.

mod support;

use bluegreen_core::plan::{IdealCloud, drive, example_spec};
use bluegreen_core::*;
use support::*;

const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web";

fn command(n: u64, kind: CommandKind) -> Command {
    let who = DeploymentId::new("ideal-test").unwrap();
    Command {
        id: CommandId::numbered(&who, "c", n, ""),
        attempt: 1,
        kind,
    }
}

fn observe_service(service: &str) -> Command {
    command(
        1,
        CommandKind::Observe(Observe::Service {
            cluster: "prod".into(),
            service: service.into(),
            failures: None,
            also: None,
        }),
    )
}

fn register(cloud: &mut IdealCloud, base: &str, image: &str) -> Name {
    let c = command(
        2,
        CommandKind::RegisterTaskDefinition {
            base: base.into(),
            container: "app".into(),
            image: image.into(),
        },
    );
    match cloud.respond(&c) {
        Ok(CommandResult::TaskDefinitionRegistered { arn }) => arn,
        other => panic!("register: {other:?}"),
    }
}

fn find(cloud: &mut IdealCloud, base: &str, image: &str) -> Option<Name> {
    let c = command(
        3,
        CommandKind::FindTaskDefinition {
            base: base.into(),
            container: "app".into(),
            image: image.into(),
        },
    );
    match cloud.respond(&c) {
        Ok(CommandResult::TaskDefinitionFound { arn }) => arn,
        other => panic!("find: {other:?}"),
    }
}

fn service(cloud: &mut IdealCloud, name: &str) -> ServiceStatus {
    match cloud.respond(&observe_service(name)) {
        Ok(CommandResult::Observed(Observation::Service(s))) => *s,
        other => panic!("observe {name}: {other:?}"),
    }
}

#[test]
fn blue_starts_live_on_revision_one_of_the_apps_family() {
    let cloud = IdealCloud::new(&example_spec());
    assert_eq!(cloud.weights_of_listener(), (1, 0));
    let td = format!("{TD}:1");
    assert_eq!(
        cloud.service_state("web-a"),
        Some((plan::IDEAL_BLUE_TASKS, td.as_str()))
    );
    assert_eq!(cloud.service_state("web-b"), Some((0, td.as_str())));
    assert_eq!(cloud.service_state("web-c"), None);
}

#[test]
fn registering_gives_the_next_revision_once_per_base_and_image() {
    let mut cloud = IdealCloud::new(&example_spec());
    let base = format!("{TD}:1");
    let two = register(&mut cloud, &base, "web:v2");
    assert_eq!(two, format!("{TD}:2"));
    assert_eq!(
        register(&mut cloud, &base, "web:v2"),
        two,
        "the same fields, the same revision"
    );
    assert_eq!(register(&mut cloud, &base, "web:v3"), format!("{TD}:3"));
    assert_eq!(find(&mut cloud, &base, "web:v2"), Some(two.clone()));
    assert_eq!(find(&mut cloud, &base, "web:v9"), None);
    // Redeploying what a revision already runs finds that revision itself...
    assert_eq!(find(&mut cloud, &two, "web:v2"), Some(two.clone()));
    // ...but not for another image.
    assert_eq!(find(&mut cloud, &two, "web:v3"), None);
}

#[test]
fn every_answer_counts_one_command_and_its_aws_calls() {
    let mut cloud = IdealCloud::new(&example_spec());
    let kinds = [
        observe_service("web-a"),
        observe_service("web-b"),
        command(
            4,
            CommandKind::ScaleEnvironment {
                cluster: "prod".into(),
                service: "web-b".into(),
                desired_count: 3,
            },
        ),
    ];
    let mut calls = 0;
    for (n, c) in kinds.iter().enumerate() {
        cloud.respond(c).unwrap();
        calls += u64::from(c.kind.aws_calls_min());
        assert_eq!((cloud.commands, cloud.aws_calls), (n as u64 + 1, calls));
    }
    assert!(calls >= 3, "{calls}");
    assert_eq!(cloud.service_state("web-b").map(|s| s.0), Some(3));
}

#[test]
fn a_live_plan_continues_from_what_the_real_account_answered() {
    let spec = example_spec();
    let mut cloud = IdealCloud::new(&spec);
    // The real listener sends everything to slot 1.
    let listener = command(
        5,
        CommandKind::Observe(Observe::Listener(spec.listener.clone())),
    );
    let weights = vec![
        TargetWeight {
            target_group: spec.target_groups[0].clone(),
            weight: 0,
        },
        TargetWeight {
            target_group: spec.target_groups[1].clone(),
            weight: 1,
        },
    ];
    cloud.adopt(
        &listener,
        &CommandResult::Observed(Observation::Listener(ListenerState { forwards: weights })),
    );
    assert_eq!(cloud.weights_of_listener(), (0, 1));

    // The real service runs 4 tasks of revision 7.
    let mut real = service(&mut cloud, "web-b");
    real.desired_count = 4;
    real.task_definition = format!("{TD}:7").into();
    cloud.adopt(
        &observe_service("web-b"),
        &CommandResult::Observed(Observation::Service(Box::new(real))),
    );
    let td7 = format!("{TD}:7");
    assert_eq!(cloud.service_state("web-b"), Some((4, td7.as_str())));
    assert_eq!(
        register(&mut cloud, &td7, "web:v8"),
        format!("{TD}:8"),
        "a new revision comes after the real ones"
    );

    // A revision the real account found for an image is the one the dry run reuses, and
    // it, too, raises the next revision.
    let mut cloud = IdealCloud::new(&spec);
    let base = format!("{TD}:1");
    let found = format!("{TD}:12");
    let find_cmd = command(
        6,
        CommandKind::FindTaskDefinition {
            base: base.as_str().into(),
            container: "app".into(),
            image: "web:v12".into(),
        },
    );
    cloud.adopt(
        &find_cmd,
        &CommandResult::TaskDefinitionFound {
            arn: Some(found.as_str().into()),
        },
    );
    assert_eq!(
        find(&mut cloud, &base, "web:v12").as_deref(),
        Some(found.as_str())
    );
    assert_eq!(register(&mut cloud, &base, "web:v13"), format!("{TD}:13"));

    // Nothing found: the base's own revision still counts.
    let mut cloud = IdealCloud::new(&spec);
    let base = format!("{TD}:30");
    let find_cmd = command(
        7,
        CommandKind::FindTaskDefinition {
            base: base.as_str().into(),
            container: "app".into(),
            image: "web:v31".into(),
        },
    );
    cloud.adopt(&find_cmd, &CommandResult::TaskDefinitionFound { arn: None });
    assert_eq!(register(&mut cloud, &base, "web:v31"), format!("{TD}:31"));
}

#[test]
fn a_task_set_deployment_ends_with_green_the_services_one_primary_task_set() {
    let spec = spec(task_set_model);
    let mut cloud = IdealCloud::new(&spec);
    let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec.clone(), START);
    drive(&mut d, &mut cloud, START, true, 100_000, |_, _, _| {});
    assert_eq!(d.phase_name(), PhaseName::Completed, "{:#?}", d.history());
    let s = service(&mut cloud, "web");
    let sets: Vec<(&str, &str)> = s
        .task_sets
        .iter()
        .map(|t| (t.status.as_str(), t.target_groups[0].as_str()))
        .collect();
    assert_eq!(sets, [("PRIMARY", spec.target_groups[1].as_str())]);
}

#[test]
fn a_drive_counts_every_handle_and_poll_and_stops_when_the_deployment_ends() {
    let spec = full_spec(|_| {});
    let mut cloud = IdealCloud::new(&spec);
    let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec, START);
    let (mut polls, mut commands, mut wakes, mut sent) = (0_u64, 0_u64, 0_u64, false);
    let steps_max = 1_000_000;
    let run = drive(&mut d, &mut cloud, START, true, steps_max, |_, out, _| {
        polls += 1;
        match out {
            Output::Command(_) => {
                commands += 1;
                sent = true;
            }
            // A drain that sent nothing is followed by a wake at its timer.
            Output::Idle { wake_at: Some(_) } if !std::mem::take(&mut sent) => wakes += 1,
            Output::Idle { .. } => sent = false,
            Output::Notice(_) => {}
        }
    });
    assert_eq!(d.phase_name(), PhaseName::Completed, "{:#?}", d.history());
    // Handled: the first wake, every answer, every later wake; each poll is a step.
    assert_eq!(run.steps, polls + 1 + commands + wakes);
    assert!(run.steps < 10_000, "it stopped at the end: {}", run.steps);
    assert_eq!(run.finished_at, d.history().last().unwrap().at);

    // No steps allowed: nothing happens.
    let spec = example_spec();
    let mut cloud = IdealCloud::new(&spec);
    let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec, START);
    let run = drive(&mut d, &mut cloud, START, true, 0, |_, _, _| {});
    assert_eq!((run.steps, run.finished_at), (0, START));
    assert_eq!(cloud.commands, 0);
}
