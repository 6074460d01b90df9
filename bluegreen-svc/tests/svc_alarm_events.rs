//! `POST /v1/webhooks/cloudwatch` end to end on a running server (the simulated cloud,
//! whose alarms never fire by polling — so only the event can roll back): an `ALARM` for
//! a watched alarm rolls a baking deployment back at once (202 with its id, and the
//! deployment is past the rollback's first write when the answer arrives); a repeat, an
//! `OK`, an unknown alarm, another account's alarm and a malformed event change nothing
//! and say why; the webhook token is required.

mod svc_util;

use std::time::{SystemTime, UNIX_EPOCH};

use bluegreen_core::Timestamp;
use svc_util::{API_TOKEN, Harness, WEBHOOK_TOKEN, app_toml};

/// The event's time: hours ahead of the wall clock, because the test server's clock runs
/// 20× faster than real time (an event older than the deployment is stale).
fn event_time() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Timestamp::from_millis(now_ms + 6 * 3_600_000).to_string()
}

fn alarm_event(name: &str, state: &str, account: &str) -> String {
    format!(
        r#"{{"version":"0","id":"7e1c","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch","account":"{account}","time":"{}","region":"us-east-1","resources":["arn:aws:cloudwatch:us-east-1:{account}:alarm:{name}"],"detail":{{"alarmName":"{name}","state":{{"value":"{state}","reason":"Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).","timestamp":"2026-11-22T12:00:00.000+0000"}},"previousState":{{"value":"OK"}}}}}}"#,
        event_time()
    )
}

async fn post_alarm(h: &Harness, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    h.send(
        reqwest::Method::POST,
        "/v1/webhooks/cloudwatch",
        token,
        Some(body),
    )
    .await
}

/// An app that watches `web-5xx` and bakes for an hour: it sits in bake, where only the
/// event can end it early.
fn baking_app() -> String {
    app_toml("web", r#"alarms = ["web-5xx"]"#).replace(r#"bake = "2s""#, r#"bake = "1h""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_event_rolls_a_baking_deployment_back_at_once() {
    let mut h = Harness::start(&baking_app()).await;
    let id = h.deploy("web", "web:v2").await;
    h.phase_is(&id, "bake").await;

    // Not the webhook token: refused before anything is read.
    let alarm = alarm_event("web-5xx", "ALARM", "123456789012");
    let (status, _) = post_alarm(&h, &alarm, Some(API_TOKEN)).await;
    assert_eq!(status, 401);
    // OK, an alarm nobody watches, and the same alarm name in another account: ignored.
    for (body, says) in [
        (alarm_event("web-5xx", "OK", "123456789012"), "is not ALARM"),
        (
            alarm_event("db-latency", "ALARM", "123456789012"),
            "no app watches alarm \"db-latency\"",
        ),
        (
            alarm_event("web-5xx", "ALARM", "999999999999"),
            "of account 999999999999",
        ),
    ] {
        let (status, v) = post_alarm(&h, &body, Some(WEBHOOK_TOKEN)).await;
        assert_eq!(status, 200, "{v}");
        assert!(v["ignored"].as_str().unwrap().contains(says), "{v}");
    }
    assert_eq!(h.deployment(&id).await["phase"], "bake");
    // A malformed event names its field.
    let (status, v) = post_alarm(
        &h,
        &alarm.replace(r#""value":"ALARM""#, r#""value":"RED""#),
        Some(WEBHOOK_TOKEN),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["field"], "detail.state.value");

    // The ALARM: 202 with the deployment, which has already left bake when it answers.
    let (status, v) = post_alarm(&h, &alarm, Some(WEBHOOK_TOKEN)).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deployments"], serde_json::json!([id]));
    let now = h.deployment(&id).await;
    assert!(
        matches!(now["phase"].as_str(), Some("rollback" | "rolled-back")),
        "{now}"
    );
    // A repeat (EventBridge delivers at least once) is harmless.
    let (status, v) = post_alarm(&h, &alarm, Some(WEBHOOK_TOKEN)).await;
    assert_eq!(status, 200, "{v}");
    let v = h.finished(&id).await;
    assert_eq!(v["phase"], "rolled-back", "{v}");
    assert_eq!(v["weights"]["green"], 0);
    let reason = v["reason"]["detail"].as_str().unwrap();
    assert!(
        reason.starts_with("alarm web-5xx went into ALARM at") && reason.contains("(event)"),
        "{reason}"
    );
    // After the end: nothing runs that watches it.
    let (status, v) = post_alarm(&h, &alarm, Some(WEBHOOK_TOKEN)).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("no running deployment watches"),
        "{v}"
    );
    // The journal has the event as an input.
    let (status, j) = h.get(&format!("/v1/deployments/{id}/journal")).await;
    assert_eq!(status, 200);
    let lines = j.as_str().expect("JSON lines");
    assert!(lines.contains(r#""input":"alarm""#), "{lines}");
    h.stop().await;
}
