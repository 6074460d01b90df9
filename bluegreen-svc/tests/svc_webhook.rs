//! The ECR webhook: auth, ignored events, bad events, idempotency by app + digest, and
//! pushes arriving while the app is busy (queue and supersede).

mod svc_util;

use reqwest::Method;
use svc_util::{API_TOKEN, Harness, WEBHOOK_TOKEN, app_toml, digest, push_event};

#[tokio::test]
async fn the_webhook_needs_the_webhook_token() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let event = push_event("web", Some("v2"), &digest(1));
    for token in [None, Some("wrong-wrong-wrong-wrong"), Some(API_TOKEN)] {
        let (status, v) = h
            .send(Method::POST, "/v1/webhooks/ecr", token, Some(&event))
            .await;
        assert_eq!(status, 401, "{token:?}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    let (status, _) = h
        .send(
            Method::POST,
            "/v1/webhooks/ecr",
            Some(WEBHOOK_TOKEN),
            Some(&event),
        )
        .await;
    assert_eq!(status, 202);
    h.stop().await;
}

#[tokio::test]
async fn a_push_deploys_by_digest_and_a_repeat_returns_the_same_id() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let event = push_event("web", Some("v2"), &digest(7));
    let (status, v) = h.webhook(&event).await;
    assert_eq!(status, 202, "{v}");
    let id = v["deployment"].as_str().unwrap().to_string();
    assert_eq!(v["deployments"][0]["state"], "started");
    let d = h.deployment(&id).await;
    assert_eq!(
        d["image"],
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@{}",
            digest(7)
        )
    );
    // EventBridge delivers at least once: the same event again is a 200 with the same id.
    let (status, v) = h.webhook(&event).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deployment"], id.as_str());
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed");
    // Even after it finished, the same digest (another tag) is a repeat, not a redeploy.
    let (status, v) = h
        .webhook(&push_event("web", Some("v2-again"), &digest(7)))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deployment"], id.as_str());
    h.stop().await;
}

#[tokio::test]
async fn events_that_are_not_successful_pushes_are_ignored_with_200() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let push = push_event("web", Some("v2"), &digest(2));
    let cases = [
        push.replace("\"PUSH\"", "\"DELETE\""),
        push.replace("\"SUCCESS\"", "\"FAILURE\""),
        push.replace("ECR Image Action", "ECR Image Scan"),
        push.replace("\"aws.ecr\"", "\"aws.ec2\""),
    ];
    for event in cases {
        let (status, v) = h.webhook(&event).await;
        assert_eq!(status, 200, "{event}: {v}");
        assert!(v["ignored"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
    let (_, v) = h.get("/v1/deployments").await;
    assert!(
        v["deployments"].as_array().unwrap().is_empty(),
        "nothing was deployed"
    );
    h.stop().await;
}

#[tokio::test]
async fn unwatched_repositories_and_tags_are_ignored_with_200() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h
        .webhook(&push_event("billing", Some("v2"), &digest(3)))
        .await;
    assert_eq!(status, 200);
    assert!(v["ignored"].as_str().unwrap().contains("billing"), "{v}");
    // web watches tags v*: "latest" and untagged pushes do not deploy.
    let (status, v) = h
        .webhook(&push_event("web", Some("latest"), &digest(3)))
        .await;
    assert_eq!(status, 200);
    assert!(v["ignored"].as_str().unwrap().contains("latest"), "{v}");
    let (status, v) = h.webhook(&push_event("web", None, &digest(3))).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("ignored").is_some());
    h.stop().await;
}

#[tokio::test]
async fn malformed_events_are_400_and_incomplete_ones_422_naming_the_field() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h.webhook("{\"detail-type\": ").await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "malformed_json");
    let push = push_event("web", Some("v2"), &digest(4));
    for (event, field) in [
        (
            push.replace(&digest(4), "sha256:nothex"),
            "detail.image-digest",
        ),
        (
            push.replace(r#""repository-name":"web","#, ""),
            "detail.repository-name",
        ),
        (
            push.replace(r#""account":"123456789012""#, r#""account":"me""#),
            "account",
        ),
        (
            push.replace(r#""region":"us-east-1""#, r#""region":"US EAST""#),
            "region",
        ),
        ("[]".to_string(), ""),
    ] {
        let (status, v) = h.webhook(&event).await;
        assert_eq!(status, 422, "{event}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    h.stop().await;
}

#[tokio::test]
async fn pushes_for_a_busy_app_queue_and_a_newer_push_supersedes_the_queued_one() {
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "10m""#);
    let mut h = Harness::start(&apps).await;
    // Two pushes at once: exactly one runs, the other queues.
    let (first_event, second_event) = (
        push_event("web", Some("v2"), &digest(10)),
        push_event("web", Some("v3"), &digest(11)),
    );
    let (a, b) = tokio::join!(h.webhook(&first_event), h.webhook(&second_event));
    assert_eq!((a.0, b.0), (202, 202), "{a:?} {b:?}");
    let states = [
        a.1["deployments"][0]["state"].clone(),
        b.1["deployments"][0]["state"].clone(),
    ];
    assert!(
        states.contains(&"started".into()) && states.contains(&"queued".into()),
        "{states:?}"
    );
    let (running, queued) = if a.1["deployments"][0]["state"] == "started" {
        (a.1, b.1)
    } else {
        (b.1, a.1)
    };
    let running = running["deployment"].as_str().unwrap().to_string();
    let queued = queued["deployment"].as_str().unwrap().to_string();
    // A third push supersedes the queued one, never the running one.
    let (status, v) = h.webhook(&push_event("web", Some("v4"), &digest(12))).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deployments"][0]["state"], "queued");
    let newest = v["deployment"].as_str().unwrap().to_string();
    let old = h.deployment(&queued).await;
    assert_eq!(old["state"], "superseded", "{old}");
    assert_eq!(old["note"], format!("superseded by {newest}"));
    let (_, apps_view) = h.get("/v1/apps").await;
    assert_eq!(apps_view["apps"][0]["deployment"], running.as_str());
    assert_eq!(apps_view["apps"][0]["queued"], newest.as_str());
    // Finish the running one; the newest starts and completes.
    h.phase_is(&running, "shift").await;
    assert_eq!(
        h.post(&format!("/v1/deployments/{running}/promote"), "")
            .await
            .0,
        202
    );
    assert_eq!(h.finished(&running).await["phase"], "completed");
    h.phase_is(&newest, "shift").await;
    assert_eq!(
        h.post(&format!("/v1/deployments/{newest}/promote"), "")
            .await
            .0,
        202
    );
    assert_eq!(h.finished(&newest).await["phase"], "completed");
    // The superseded deployment never touched the cloud: its journal is just `created`.
    let store = h.server.as_ref().unwrap().runner.store().clone();
    let lines = store.journal(&queued).await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    // Aborting a queued deployment cancels it.
    let (status, v) = h.webhook(&push_event("web", Some("v5"), &digest(13))).await;
    assert_eq!(status, 202);
    let fifth = v["deployment"].as_str().unwrap().to_string();
    let (status, _) = h.webhook(&push_event("web", Some("v6"), &digest(14))).await;
    assert_eq!(status, 202);
    let sixth_state = h.get("/v1/apps").await.1["apps"][0]["queued"].clone();
    assert!(sixth_state.is_string());
    let (status, _) = h
        .post(
            &format!("/v1/deployments/{}/abort", sixth_state.as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        h.deployment(sixth_state.as_str().unwrap()).await["state"],
        "cancelled"
    );
    assert_eq!(
        h.post(&format!("/v1/deployments/{fifth}/abort"), "")
            .await
            .0,
        202
    );
    h.finished(&fifth).await;
    h.stop().await;
}

/// EventBridge retries for hours: a push whose event time is older than the newest push
/// already accepted for the app is ignored (stale, counted by reason) and neither queues
/// nor supersedes; a repeat of an accepted digest still answers with its deployment.
#[tokio::test]
async fn an_older_push_delivered_after_a_newer_one_is_ignored_as_stale() {
    let h = Harness::start(&app_toml("web", "")).await;
    let at = |t: &str, d: &str| push_event("web", Some("v2"), d).replace("2026-11-22T03:04:05Z", t);
    let (status, first) = h.webhook(&at("2026-11-22T03:10:00Z", &digest(1))).await;
    assert_eq!(status, 202, "{first}");
    let (status, newer) = h.webhook(&at("2026-11-22T03:20:00Z", &digest(2))).await;
    assert_eq!(status, 202, "{newer}");
    // The late one: pushed between the two, delivered after both.
    let (status, late) = h.webhook(&at("2026-11-22T03:15:00Z", &digest(3))).await;
    assert_eq!(status, 200, "{late}");
    let reason = late["ignored"].as_str().unwrap_or_default();
    assert!(reason.contains("stale"), "{late}");
    // Nothing was made for the late push: the app has the two deployments it had.
    let (_, list) = h.get("/v1/deployments?app=web").await;
    let ids: Vec<&str> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        ids.contains(&newer["deployment"].as_str().unwrap()),
        "{list}"
    );
    // A late repeat of an accepted digest answers with its deployment.
    let (status, again) = h.webhook(&at("2026-11-22T03:10:00Z", &digest(1))).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["deployment"], first["deployment"]);
    let (_, metrics) = h.send(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("bluegreen_webhook_ignored_total{reason=\"stale\"} 1"),
        "{text}"
    );
}
