//! The HTTP API's contract (DESIGN §5): every status code, auth, bad bodies, one
//! deployment per app, operator actions, the apps view and metrics.

mod svc_util;

use reqwest::Method;
use svc_util::{API_TOKEN, Harness, WEBHOOK_TOKEN, app_toml};

fn error_code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error body>")
}

#[tokio::test]
async fn healthz_and_metrics_answer_without_a_token() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    let (status, text) = h.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(
        text.as_str()
            .unwrap()
            .contains("bluegreen_deployments_in_flight"),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_api_token_is_required_and_compared_exactly() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h.send(Method::GET, "/v1/deployments", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&v), "unauthorized");
    let (status, _) = h
        .send(
            Method::GET,
            "/v1/deployments",
            Some("wrong-token-wrong-token"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = h
        .send(
            Method::GET,
            "/v1/deployments",
            Some(&format!("{API_TOKEN}x")),
            None,
        )
        .await;
    assert_eq!(status, 401);
    // The webhook token does not open the API.
    let (status, _) = h
        .send(Method::GET, "/v1/deployments", Some(WEBHOOK_TOKEN), None)
        .await;
    assert_eq!(status, 401);
    let (status, v) = h
        .send(Method::GET, "/v1/deployments", Some(API_TOKEN), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["deployments"].as_array().unwrap().is_empty());
    // Unauthenticated bad bodies are 401, not 400: auth comes first.
    let (status, _) = h
        .send(Method::POST, "/v1/deployments", None, Some("{not json"))
        .await;
    assert_eq!(status, 401);
    h.stop().await;
}

#[tokio::test]
async fn a_deployment_is_created_with_201_and_completes() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h
        .post("/v1/deployments", r#"{"app":"web","image":"web:v2"}"#)
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("web-"), "{id}");
    assert_eq!(v["state"], "running");
    assert!(
        v["plan"]["steps"].as_array().unwrap().len() >= 6,
        "the plan is included: {v}"
    );
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed", "{done}");
    assert_eq!(done["weights"]["green"], 100);
    let phases: Vec<&str> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"shift") && phases.contains(&"bake"),
        "{phases:?}"
    );
    let (slot_a, slot_b) = h.cloud.weights("web").unwrap();
    assert!(
        slot_a == 0 && slot_b > 0,
        "the listener sends everything to slot b: {slot_a}/{slot_b}"
    );
    let (_, metrics) = h.send(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"bluegreen_deployments_total{outcome="completed"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("bluegreen_phase_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("bluegreen_commands_total"), "{metrics}");
    h.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_bad_fields_are_422_naming_the_field() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h.post("/v1/deployments", "{\"app\": ").await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "malformed_json");
    for (body, field) in [
        (r#"{"image":"web:v2"}"#, "app"),
        (r#"{"app":"web"}"#, "image"),
        (r#"{"app":7,"image":"web:v2"}"#, "app"),
        (
            r#"{"app":"web","image":"web:v2","supersede":"yes"}"#,
            "supersede",
        ),
        (
            r#"{"app":"web","image":"web:v2","colour":"blue"}"#,
            "colour",
        ),
        (r#"{"app":"web","image":"web@sha256:abc"}"#, "image"),
        (r#"{"app":"web","image":"has space"}"#, "image"),
        (r#"[1,2]"#, ""),
    ] {
        let (status, v) = h.post("/v1/deployments", body).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(error_code(&v), "invalid_field", "{body}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    h.stop().await;
}

#[tokio::test]
async fn unknown_apps_deployments_actions_and_routes_are_404() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h
        .post("/v1/deployments", r#"{"app":"nope","image":"x:1"}"#)
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&v), "unknown_app");
    assert_eq!(v["error"]["field"], "app");
    let (status, v) = h.get("/v1/deployments/web-20260101T000000-1").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&v), "not_found");
    let (status, _) = h
        .post("/v1/deployments/web-20260101T000000-1/promote", "")
        .await;
    assert_eq!(status, 404);
    let id = h.deploy("web", "web:v2").await;
    let (status, _) = h.post(&format!("/v1/deployments/{id}/explode"), "").await;
    assert_eq!(status, 404);
    let (status, v) = h.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(
        error_code(&v),
        "not_found",
        "framework 404s carry the error body too"
    );
    let (status, v) = h
        .send(Method::DELETE, "/v1/deployments", Some(API_TOKEN), None)
        .await;
    assert_eq!(status, 405);
    assert_eq!(error_code(&v), "method_not_allowed");
    h.finished(&id).await;
    h.stop().await;
}

#[tokio::test]
async fn one_deployment_per_app_409_unless_superseding_and_same_image_is_idempotent() {
    // A long canary hold keeps the first deployment running while we poke at it.
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "10m""#);
    let mut h = Harness::start(&apps).await;
    let first = h.deploy("web", "web:v2").await;
    // The same image again: 200 with the same deployment.
    let (status, v) = h
        .post("/v1/deployments", r#"{"app":"web","image":"web:v2"}"#)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], first.as_str());
    // Another image while one runs: 409.
    let (status, v) = h
        .post("/v1/deployments", r#"{"app":"web","image":"web:v3"}"#)
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(error_code(&v), "deployment_running");
    assert!(v["error"]["message"].as_str().unwrap().contains(&first));
    // Superseding: the new one queues, the running one rolls back, then the new one runs.
    h.phase_is(&first, "shift").await;
    let (status, v) = h
        .post(
            "/v1/deployments",
            r#"{"app":"web","image":"web:v4","supersede":true}"#,
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // Queued behind the running one — which the abort may already have rolled back by
    // the time the answer is written, so the new one may already run.
    assert!(
        matches!(v["state"].as_str(), Some("queued" | "running")),
        "{v}"
    );
    let second = v["id"].as_str().unwrap().to_string();
    let old = h.finished(&first).await;
    assert_eq!(old["phase"], "rolled-back", "{old}");
    assert_eq!(old["reason"]["kind"], "aborted");
    assert!(
        old["reason"]["detail"].as_str().unwrap().contains(&second),
        "{old}"
    );
    h.phase_is(&second, "shift").await;
    let (status, _) = h
        .post(&format!("/v1/deployments/{second}/promote"), "")
        .await;
    assert_eq!(status, 202, "promote ends the canary hold");
    let done = h.finished(&second).await;
    assert_eq!(done["phase"], "completed", "{done}");
    h.stop().await;
}

#[tokio::test]
async fn operator_actions_are_202_or_409_when_the_phase_refuses() {
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "10m""#);
    let mut h = Harness::start(&apps).await;
    let id = h.deploy("web", "web:v2").await;
    h.phase_is(&id, "shift").await;
    let (status, v) = h.post(&format!("/v1/deployments/{id}/resume"), "").await;
    assert_eq!(status, 409, "resume without pause: {v}");
    assert_eq!(error_code(&v), "refused");
    let (status, _) = h.post(&format!("/v1/deployments/{id}/pause"), "").await;
    assert_eq!(status, 202);
    h.phase_is(&id, "paused").await;
    let (status, _) = h.post(&format!("/v1/deployments/{id}/resume"), "").await;
    assert_eq!(status, 202);
    let (status, v) = h
        .post(
            &format!("/v1/deployments/{id}/promote"),
            r#"{"reason":"x"}"#,
        )
        .await;
    assert_eq!(status, 422, "only abort takes a reason: {v}");
    let (status, _) = h
        .post(
            &format!("/v1/deployments/{id}/abort"),
            r#"{"reason":"bad canary"}"#,
        )
        .await;
    assert_eq!(status, 202);
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "rolled-back");
    assert_eq!(done["reason"]["detail"], "bad canary");
    assert_eq!(done["weights"]["blue"], 100);
    // A finished deployment refuses everything with 409.
    let (status, v) = h.post(&format!("/v1/deployments/{id}/abort"), "").await;
    assert_eq!(status, 409, "{v}");
    h.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_with_the_error_body() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let big = format!(r#"{{"app":"web","image":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, v) = h.post("/v1/deployments", &big).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&v), "payload_too_large");
    let (status, v) = h.webhook(&big).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&v), "payload_too_large");
    h.stop().await;
}

#[tokio::test]
async fn apps_show_the_live_side_read_from_the_listener() {
    let mut h = Harness::start(&format!("{}{}", app_toml("web", ""), app_toml("api", ""))).await;
    let (status, v) = h.get("/v1/apps").await;
    assert_eq!(status, 200, "{v}");
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    let web = apps.iter().find(|a| a["name"] == "web").unwrap();
    assert_eq!(web["live"], "a");
    assert_eq!(web["slots"][0]["weight"], 100);
    assert_eq!(web["mode"], "service-pair");
    let id = h.deploy("web", "web:v2").await;
    h.finished(&id).await;
    let (_, v) = h.get("/v1/apps?app=web").await;
    assert_eq!(v["apps"][0]["live"], "b", "{v}");
    assert_eq!(v["apps"][0]["slots"][1]["weight"], 100);
    let (status, _) = h.get("/v1/apps?app=nope").await;
    assert_eq!(status, 404);
    let (status, v) = h.get("/v1/apps?limit=0").await;
    assert_eq!(status, 422, "{v}");
    h.stop().await;
}

#[tokio::test]
async fn deployments_list_filters_by_app_and_the_journal_replays() {
    let mut h = Harness::start(&format!("{}{}", app_toml("web", ""), app_toml("api", ""))).await;
    let w = h.deploy("web", "web:v2").await;
    let a = h.deploy("api", "api:v2").await;
    h.finished(&w).await;
    h.finished(&a).await;
    let (_, v) = h.get("/v1/deployments?app=api").await;
    let list = v["deployments"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], a.as_str());
    assert!(list[0].get("plan").is_none(), "lists leave plans out");
    let (status, _) = h.get("/v1/deployments?limit=abc").await;
    assert_eq!(status, 422);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/deployments/{w}/journal", h.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<bluegreen_core::journal::JournalLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a journal line"))
        .collect();
    let report = bluegreen_core::journal::replay(&lines).expect("replayable");
    assert_eq!(
        report.divergence, None,
        "the journal re-drives the machine identically"
    );
    assert_eq!(report.final_phase, bluegreen_core::PhaseName::Completed);
    h.stop().await;
}
