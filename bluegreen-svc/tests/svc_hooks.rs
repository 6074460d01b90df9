//! Hooks over HTTP against a hook server the test runs on loopback: signed payloads,
//! not-yet then pass, a failing hook rolls back, a failing rollback hook does not stop
//! the rollback, and a slow hook is retried.

mod svc_util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bluegreen_core::journal::JournalEntry;
use bluegreen_core::{HookPayload, Notice, Output};
use bluegreen_svc::hooks::{DELIVERY_HEADER, SIGNATURE_HEADER, verify};
use svc_util::{Harness, app_toml};

#[derive(Default)]
struct Calls {
    /// (hook path, payload, signature valid)
    seen: Vec<(String, HookPayload, bool)>,
    /// (hook path, X-Bluegreen-Delivery) per request.
    deliveries: Vec<(String, String)>,
    /// The dedupe receiver's first answer per delivery id.
    answered: std::collections::BTreeMap<String, u16>,
}

type Shared = Arc<Mutex<Calls>>;

/// Behaviour by path: `/pass`, `/not-yet-once`, `/fail` (403), `/error` (500), `/slow` (sleeps past the timeout once).
async fn hook(
    State(calls): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid = verify(b"test-hook-secret", &body, signature, now).is_ok();
    let delivery = headers
        .get(DELIVERY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let payload: HookPayload = serde_json::from_slice(&body).expect("the payload is a HookPayload");
    let earlier = {
        let mut c = calls.lock().unwrap();
        let earlier = c.seen.iter().filter(|(n, _, _)| *n == name).count();
        c.seen.push((name.clone(), payload, valid));
        c.deliveries.push((name.clone(), delivery.clone()));
        earlier
    };
    if !valid {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match name.as_str() {
        // A receiver that dedupes by delivery id: the first request of a delivery runs
        // the check (it passes) but its answer is lost — 503, as an overloaded proxy
        // would; a repeat of the delivery is answered with the recorded verdict instead
        // of being refused as a replay.
        "dedupe-503-once" => {
            if delivery.is_empty() {
                return (StatusCode::BAD_REQUEST, "no delivery id").into_response();
            }
            let first = calls.lock().unwrap().answered.get(&delivery).copied();
            match first {
                Some(_) => axum::Json(serde_json::json!({"verdict": "pass"})).into_response(),
                None => {
                    calls.lock().unwrap().answered.insert(delivery, 200);
                    (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
                }
            }
        }
        "pass" => StatusCode::NO_CONTENT.into_response(),
        "not-yet-once" if earlier == 0 => {
            axum::Json(serde_json::json!({"verdict": "not-yet"})).into_response()
        }
        "not-yet-once" => axum::Json(serde_json::json!({"verdict": "pass"})).into_response(),
        "fail" => (
            StatusCode::FORBIDDEN,
            "smoke test failed: /checkout returned 500",
        )
            .into_response(),
        "error" => (StatusCode::INTERNAL_SERVER_ERROR, "hook server broken").into_response(),
        "slow" if earlier == 0 => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        "slow" => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hook_server() -> (String, Shared, tokio::task::JoinHandle<()>) {
    let calls: Shared = Arc::default();
    let app = Router::new()
        .route("/{name}", post(hook))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, calls, task)
}

fn hooks_toml(base: &str, hooks: &[(&str, &str, &str)]) -> String {
    let items: Vec<String> = hooks
        .iter()
        .map(|(name, stage, path)| {
            format!(r#"{{ name = "{name}", stage = "{stage}", url = "{base}/{path}", timeout = "1s", deadline = "5m", interval = "1s" }}"#)
        })
        .collect();
    format!("hooks = [{}]", items.join(", "))
}

#[tokio::test]
async fn signed_hooks_pass_after_not_yet_and_the_deployment_completes() {
    let (base, calls, server) = hook_server().await;
    let hooks = hooks_toml(
        &base,
        &[
            ("smoke", "green-ready", "not-yet-once"),
            ("gate", "before-shift", "pass"),
        ],
    );
    let mut h = Harness::start(&app_toml("web", &hooks)).await;
    let id = h.deploy("web", "web:v2").await;
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed", "{done}");
    let seen = calls.lock().unwrap().seen.clone_summary();
    assert_eq!(
        seen,
        vec![
            ("not-yet-once".to_string(), 1),
            ("not-yet-once".to_string(), 2),
            ("pass".to_string(), 1)
        ]
    );
    let (all_signed, first) = {
        let calls = calls.lock().unwrap();
        let all_signed = calls.seen.iter().all(|(_, _, valid)| *valid);
        (all_signed, calls.seen[0].1.clone())
    };
    assert!(all_signed, "every call is signed with the secret");
    assert_eq!(first.deployment, id);
    assert_eq!(first.app, "web");
    assert_eq!(first.image.as_deref(), Some("web:v2"));
    assert_eq!(first.weights.blue, 100);
    assert!(
        first
            .green_target_group
            .as_deref()
            .is_some_and(|tg| tg.contains("web-b"))
    );
    h.stop().await;
    server.abort();
}

trait Summary {
    fn clone_summary(&self) -> Vec<(String, u32)>;
}

impl Summary for Vec<(String, HookPayload, bool)> {
    fn clone_summary(&self) -> Vec<(String, u32)> {
        self.iter().map(|(n, p, _)| (n.clone(), p.call)).collect()
    }
}

#[tokio::test]
async fn a_failing_hook_rolls_back_and_a_failing_rollback_hook_does_not_stop_the_rollback() {
    let (base, calls, server) = hook_server().await;
    let hooks = hooks_toml(
        &base,
        &[
            ("smoke", "green-ready", "fail"),
            ("cleanup", "rollback", "error"),
        ],
    );
    let mut h = Harness::start(&app_toml("web", &hooks)).await;
    let id = h.deploy("web", "web:v2").await;
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "rolled-back", "{done}");
    assert_eq!(done["reason"]["kind"], "hook");
    assert!(
        done["reason"]["detail"]
            .as_str()
            .unwrap()
            .contains("/checkout returned 500"),
        "{done}"
    );
    assert_eq!(done["weights"]["blue"], 100);
    // The rollback hook answered 500 every time it was retried, and the rollback went on.
    let cleanup_calls = calls
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(n, _, _)| n == "error")
        .count();
    assert!(
        cleanup_calls >= 2,
        "the 5xx rollback hook was retried ({cleanup_calls} calls)"
    );
    let store = h.server.as_ref().unwrap().runner.store().clone();
    let lines = store.journal(&id).await.unwrap();
    let noticed = lines.iter().any(|l| {
        matches!(&l.entry, JournalEntry::Output { output: Output::Notice(Notice::RollbackHookFailed { name, .. }) } if name == "cleanup")
    });
    assert!(noticed, "the journal records the failed rollback hook");
    h.stop().await;
    server.abort();
}

#[tokio::test]
async fn a_hook_that_times_out_is_retried_and_then_passes() {
    let (base, calls, server) = hook_server().await;
    let hooks = hooks_toml(&base, &[("slow", "green-ready", "slow")]);
    let mut h = Harness::start(&app_toml("web", &hooks)).await;
    let id = h.deploy("web", "web:v2").await;
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed", "{done}");
    let slow_calls = calls
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(n, _, _)| n == "slow")
        .count();
    assert_eq!(slow_calls, 2, "one timed-out call, one retry");
    h.stop().await;
    server.abort();
}

#[tokio::test]
async fn a_receiver_that_dedupes_by_delivery_id_and_answers_503_once_does_not_roll_back() {
    let (base, calls, server) = hook_server().await;
    let hooks = hooks_toml(&base, &[("smoke", "green-ready", "dedupe-503-once")]);
    let mut h = Harness::start(&app_toml("web", &hooks)).await;
    let id = h.deploy("web", "web:v2").await;
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed", "{done}");
    let (deliveries, payloads) = {
        let c = calls.lock().unwrap();
        (c.deliveries.clone(), c.seen.clone_summary())
    };
    assert_eq!(
        deliveries.len(),
        2,
        "the 503 was retried once: {deliveries:?}"
    );
    assert_eq!(
        deliveries[0].1, deliveries[1].1,
        "a retry carries the same delivery id"
    );
    assert_eq!(deliveries[0].1, format!("{id}/hook-smoke-1"));
    assert_eq!(
        payloads,
        vec![
            ("dedupe-503-once".to_string(), 1),
            ("dedupe-503-once".to_string(), 1)
        ],
        "the retry is the same call, not a new one"
    );
    h.stop().await;
    server.abort();
}
