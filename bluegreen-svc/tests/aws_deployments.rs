//! Full deployments through the core machine against the local emulator (moto), the
//! fixture playing ECS's part: all-at-once and canary complete, an alarm rolls a canary
//! back, the task-set model completes, and green follows an autoscaler's scale-out of
//! blue during the canary. Every command is checked to make exactly the
//! AWS calls the core budgets. Skipped with a message when the emulator is not installed
//! (a failure under CI=true).

mod support;

use bluegreen_core::{CommandKind, ListenerRef, PhaseName, Strategy};
use support::drive::Driver;
use support::ecs_player::PlaysEcs;
use support::env::{Env, env};
use support::fixture;

/// Every command made exactly the calls the core budgets (`aws_calls_min`).
fn assert_calls_at_budget(driver: &Driver) {
    for e in &driver.executed {
        let budget = u64::from(e.command.kind.aws_calls_min());
        assert_eq!(e.calls, budget, "{} made {} calls", e.command.id, e.calls);
    }
}

async fn deploy(env: &Env, id: &str, draft: bluegreen_core::SpecDraft) -> Driver {
    let cloud = PlaysEcs::new(env.aws.clone(), env.fx.clone());
    let mut driver = Driver::new(id, draft);
    driver.run(&cloud, || env.aws.calls_total()).await;
    driver
}

#[tokio::test]
async fn all_at_once_completes_with_production_on_green_and_blue_empty() {
    let Some(env) = env("all_at_once_completes_with_production_on_green_and_blue_empty").await
    else {
        return;
    };
    let d = deploy(&env, "web-aao-1", env.fx.web_draft(Strategy::AllAtOnce)).await;
    assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
    assert_eq!(env.fx.production_weights().await, (0, 100));
    let (blue, green) = (env.fx.service("web-a").await, env.fx.service("web-b").await);
    assert_eq!((blue.desired_count(), blue.running_count()), (0, 0));
    assert_eq!(green.desired_count(), fixture::BLUE_TASKS as i32);
    assert!(
        green
            .task_definition()
            .unwrap()
            .ends_with("task-definition/web:2")
    );
    assert!(
        env.fx
            .targets(&env.fx.web_target_groups[0])
            .await
            .is_empty()
    );
    assert_calls_at_budget(&d);

    // The next deployment goes back the other way, on the same slots.
    let mut draft = env.fx.web_draft(Strategy::AllAtOnce);
    draft.artifact = bluegreen_core::Artifact::Image("web:v3".into());
    let d = deploy(&env, "web-aao-2", draft).await;
    assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
    assert_eq!(env.fx.production_weights().await, (100, 0));
    assert_eq!(env.fx.service("web-b").await.desired_count(), 0);
}

#[tokio::test]
async fn canary_with_test_traffic_completes() {
    let Some(env) = env("canary_with_test_traffic_completes").await else {
        return;
    };
    let mut draft = env.fx.web_draft(Strategy::Canary {
        percent: 10,
        wait_ms: 5_000,
    });
    draft.test_listener = Some(ListenerRef {
        listener_arn: env.fx.web_test_listener.clone().into(),
        rule_arn: None,
    });
    let d = deploy(&env, "web-canary-1", draft).await;
    assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
    assert_eq!(env.fx.production_weights().await, (0, 100));
    let test = env.fx.weights(&env.fx.web_test_listener, None).await;
    let green_tg = &env.fx.web_target_groups[1];
    assert!(
        test.iter().all(|(tg, w)| (tg == green_tg) == (*w > 0)),
        "test listener on green: {test:?}"
    );
    assert_eq!(env.fx.service("web-a").await.desired_count(), 0);
    let wrote_10 = d.executed.iter().any(|e| {
        matches!(&e.command.kind, CommandKind::SetListenerWeights { weights, .. }
            if weights.iter().any(|w| &w.target_group == green_tg && w.weight == 10))
    });
    assert!(wrote_10, "the canary step was written");
    assert_calls_at_budget(&d);
}

#[tokio::test]
async fn an_alarm_rolls_a_canary_back_to_all_blue_with_green_removed() {
    let Some(env) = env("an_alarm_rolls_a_canary_back_to_all_blue_with_green_removed").await else {
        return;
    };
    let cloud = PlaysEcs::new(env.aws.clone(), env.fx.clone());
    let mut d = Driver::new(
        "web-canary-alarm",
        env.fx.web_draft(Strategy::Canary {
            percent: 10,
            wait_ms: 60_000,
        }),
    );
    let mut alarmed = false;
    for _ in 0..support::drive::TURNS_MAX {
        if !d.turn(&cloud, || env.aws.calls_total()).await {
            break;
        }
        // Once green takes canary traffic, the 5xx alarm fires.
        if !alarmed && d.deployment.knowledge().prod_weights.green == 10 {
            env.fx
                .set_alarm_state(fixture::ALARM, "ALARM", "5xx above 10 for 1 minute")
                .await;
            alarmed = true;
        }
    }
    assert!(alarmed, "the canary step was reached: {}", d.report());
    assert_eq!(d.phase(), PhaseName::RolledBack, "{}", d.report());
    let reason = d.deployment.outcome_reason().unwrap().to_string();
    assert!(reason.contains("web-5xx"), "{reason}");
    assert_eq!(env.fx.production_weights().await, (100, 0));
    let green = env.fx.service("web-b").await;
    assert_eq!((green.desired_count(), green.running_count()), (0, 0));
    assert!(
        env.fx
            .targets(&env.fx.web_target_groups[1])
            .await
            .is_empty()
    );
    assert_eq!(
        env.fx.service("web-a").await.desired_count(),
        fixture::BLUE_TASKS as i32,
        "blue kept"
    );
    assert_calls_at_budget(&d);
}

#[tokio::test]
async fn task_set_deployment_completes_with_green_primary_and_blue_deleted() {
    let Some(env) = env("task_set_deployment_completes_with_green_primary_and_blue_deleted").await
    else {
        return;
    };
    let d = deploy(&env, "api-1", env.fx.api_draft(Strategy::AllAtOnce)).await;
    assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
    let w = env.fx.weights(&env.fx.api_listener, None).await;
    let of = |tg: &str| {
        w.iter()
            .filter(|(t, _)| t == tg)
            .map(|(_, w)| *w)
            .sum::<u32>()
    };
    assert_eq!(
        (
            of(&env.fx.api_target_groups[0]),
            of(&env.fx.api_target_groups[1])
        ),
        (0, 100)
    );
    let svc = env.fx.service(fixture::API_SERVICE).await;
    assert_eq!(svc.task_sets().len(), 1, "blue's task set deleted");
    let green = &svc.task_sets()[0];
    assert_eq!(
        (green.status(), green.external_id()),
        (Some("PRIMARY"), Some("api-1"))
    );
    assert!(
        green
            .task_definition()
            .unwrap()
            .ends_with("task-definition/api:2")
    );
    assert_calls_at_budget(&d);
}

/// An autoscaler scales blue out (2 → 4 tasks) while the canary holds: green, which
/// follows blue's scale until the shift completes, is scaled to 4 before it takes all
/// traffic, and ends the deployment at 4.
#[tokio::test]
async fn green_follows_a_scale_out_of_blue_during_the_canary() {
    let Some(env) = env("green_follows_a_scale_out_of_blue_during_the_canary").await else {
        return;
    };
    let draft = env.fx.web_draft(Strategy::Canary {
        percent: 10,
        wait_ms: 5_000,
    });
    let cloud = PlaysEcs::new(env.aws.clone(), env.fx.clone());
    let mut d = Driver::new("web-follow-1", draft);
    let scaled_to = fixture::BLUE_TASKS + 2;
    let mut scaled = false;
    for _ in 0..2_000 {
        if !scaled && d.phase() == PhaseName::Shift {
            env.fx.set_desired("web-a", scaled_to).await;
            scaled = true;
        }
        if !d.turn(&cloud, || env.aws.calls_total()).await {
            break;
        }
    }
    assert!(
        scaled,
        "the deployment never reached the shift: {}",
        d.report()
    );
    assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
    let green = env.fx.service("web-b").await;
    assert_eq!(green.desired_count(), scaled_to as i32, "{}", d.report());
    let followed = d.executed.iter().any(|e| {
        matches!(&e.command.kind, CommandKind::ScaleEnvironment { service, desired_count, .. }
            if service == "web-b" && *desired_count == scaled_to)
    });
    assert!(
        followed,
        "green was scaled to blue's new size: {}",
        d.report()
    );
    assert_calls_at_budget(&d);
}
