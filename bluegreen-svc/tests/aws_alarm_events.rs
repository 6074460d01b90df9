//! The real `bluegreen` binary on the AWS adapter against the local emulator (moto; the
//! test plays ECS's part and bridges CloudWatch, as `svc_sigkill` does), with a 5 s poll:
//! an alarm that goes into ALARM during the bake, announced to
//! `POST /v1/webhooks/cloudwatch` as EventBridge would, puts production back on 100 %
//! blue at once — the deployment is already rolling back when the webhook answers, and
//! its reason says it was the event; the same alarm without the event is found by the
//! next poll. Both times (wall time, one sample each) are printed for BENCHMARKS.md.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cbor_bridge::CborBridge;
use support::fixture::{ALARM, Fixture};
use support::moto::Moto;
use support::serve::{API_TOKEN, WEBHOOK_TOKEN, WebServe, deploy, wait_deployment};

/// The wait for a deployment: three minutes.
const WAIT: Duration = Duration::from_secs(180);

/// Wall time until the emulator's listener sends all production to blue (web-a).
async fn until_all_blue(fx: &Fixture, since: Instant) -> Duration {
    loop {
        if fx.production_weights().await == (100, 0) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "production never went back to blue"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alarm_event() -> String {
    // The event's time: now (wall clock), as CloudWatch would stamp it.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let time = bluegreen_core::Timestamp::from_millis(now_ms).to_string();
    format!(
        r#"{{"version":"0","id":"e1","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch","account":"123456789012","time":"{time}","region":"us-east-1","resources":[],"detail":{{"alarmName":"{ALARM}","state":{{"value":"ALARM","reason":"Threshold Crossed: 5xx above 10"}},"previousState":{{"value":"OK"}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_event_rolls_back_through_the_real_binary_before_the_next_poll() {
    let Some(moto) = Moto::start_or_skip("aws_alarm_events").await else {
        return;
    };
    moto.manual_task_transitions().await;
    let fx = Arc::new(Fixture::build(&moto).await);
    let bridge = CborBridge::start(&moto.endpoint).await;
    let _player = fx.spawn_ecs_player(Duration::from_millis(100));

    let served = WebServe::start("alarm", &moto, &fx, &bridge, "10m", "5s").await;
    let (http, base) = (&served.http, served.base.as_str());
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web";

    // 1. With the event.
    let id = deploy(http, base, &format!("{image}:v2")).await;
    let first_id = id.clone();
    let url = format!("{base}/v1/deployments/{id}");
    wait_deployment(http, &url, "the bake", WAIT, |v| v["phase"] == "bake").await;
    assert_eq!(fx.production_weights().await, (0, 100), "green is live");
    fx.set_alarm_state(ALARM, "ALARM", "Threshold Crossed: 5xx above 10")
        .await;
    let fired = Instant::now();
    let resp = http
        .post(format!("{base}/v1/webhooks/cloudwatch"))
        .bearer_auth(WEBHOOK_TOKEN)
        .body(alarm_event())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["deployments"], serde_json::json!([id]), "{answer}");
    let evented = until_all_blue(&fx, fired).await;
    let done = wait_deployment(http, &url, "the rollback", WAIT, |v| {
        v["state"] == "finished"
    })
    .await;
    assert_eq!(done["phase"], "rolled-back", "{done}");
    let reason = done["reason"]["detail"].as_str().unwrap_or_default();
    assert!(
        reason.contains("(event)"),
        "the event rolled it back: {reason}"
    );

    // After the outcome the slots' target groups say which one is live (best effort,
    // written once the deployment ended).
    let blue_tags = fx.tags(&fx.web_target_groups[0]).await;
    let green_tags = fx.tags(&fx.web_target_groups[1]).await;
    assert_eq!(
        blue_tags.get("bluegreen:live").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        green_tags.get("bluegreen:live").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        blue_tags.get("bluegreen:outcome").map(String::as_str),
        Some("rolled-back")
    );
    assert_eq!(blue_tags.get("bluegreen:deployment"), Some(&id));
    assert_eq!(
        green_tags.get("bluegreen:slot").map(String::as_str),
        Some("b")
    );

    // 2. The same alarm without the event: the next poll finds it.
    fx.set_alarm_state(ALARM, "OK", "back to normal").await;
    let id = deploy(http, base, &format!("{image}:v3")).await;
    let url = format!("{base}/v1/deployments/{id}");
    wait_deployment(http, &url, "the bake", WAIT, |v| v["phase"] == "bake").await;
    fx.set_alarm_state(ALARM, "ALARM", "Threshold Crossed: 5xx above 10")
        .await;
    let fired = Instant::now();
    let polled = until_all_blue(&fx, fired).await;
    let done = wait_deployment(http, &url, "the rollback", WAIT, |v| {
        v["state"] == "finished"
    })
    .await;
    assert_eq!(done["phase"], "rolled-back", "{done}");
    let reason = done["reason"]["detail"].as_str().unwrap_or_default();
    assert!(
        reason.contains("is in ALARM") && !reason.contains("(event)"),
        "polling found it: {reason}"
    );
    // Both journals (the binary's own, from the API) replayed in the simulated world by
    // this build: every seed decides as the emulator run did — rolled back by the alarm.
    for id in [&first_id, &id] {
        let journal = http
            .get(format!("{base}/v1/deployments/{id}/journal"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The emulator's timings are seconds (tasks start at once, targets drain at
        // once): the world's fast profile is the like of it.
        let replays = bluegreen_sim::replay_world::replay_file(
            &journal,
            5,
            &bluegreen_sim::WorldProfile::fast(),
        )
        .expect("the journal replays in the world");
        assert_eq!(replays.len(), 1);
        let r = &replays[0];
        eprint!("{r}");
        assert_eq!(
            r.facts.recorded.outcome,
            Some(bluegreen_core::PhaseName::RolledBack)
        );
        assert!(r.same_everywhere(), "{r}");
        // On AWS timings (green healthy after ~160 s) this config's 2 m health timeout
        // would have rolled back at health-check: the replay says so.
        let on_aws = bluegreen_sim::replay_world::replay_file(
            &journal,
            2,
            &bluegreen_sim::WorldProfile::aws(),
        )
        .unwrap();
        eprint!("{}", on_aws[0]);
        assert!(
            on_aws[0].runs.iter().all(|run| run
                .difference
                .as_deref()
                .is_some_and(|d| d.starts_with("after health-check"))),
            "{}",
            on_aws[0]
        );
    }
    eprintln!(
        "emulator, real binary, 5 s poll: alarm → production on 100 % blue: event-driven {} ms, poll-only {} ms",
        evented.as_millis(),
        polled.as_millis()
    );
}
