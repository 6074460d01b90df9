//! Notifications end to end: `bluegreen serve` (the binary, on the embedded default's
//! simulated cloud) with two `[[notify]]` entries — a signed webhook to a receiver on
//! loopback, and a Slack entry whose receiver is down. Deployments complete and roll
//! back as if nothing were configured; the receiver gets every event in order (percent
//! and reason included); the down one costs only its bounded retries; `/metrics` counts
//! both.

mod ui_util;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Mutex;
use ui_util::{Scratch, Serve, example_config, until};

type Got = Arc<Mutex<Vec<(HeaderMap, Value, Bytes)>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().await.push((headers, v, body));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

async fn finished(http: &reqwest::Client, base: &str, id: &str) -> Value {
    until(&format!("{id} to finish"), Duration::from_secs(120), || {
        let url = format!("{base}/v1/deployments/{id}");
        let http = http.clone();
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth("dev-token")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["state"] == "finished").then_some(v)
        }
    })
    .await
}

async fn deploy(http: &reqwest::Client, base: &str, image: &str) -> String {
    let v: Value = http
        .post(format!("{base}/v1/deployments"))
        .bearer_auth("dev-token")
        .json(&serde_json::json!({"app": "web", "image": image}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_receiver_in_order_and_a_down_one_never_holds_a_deployment() {
    let dir = Scratch::new("notify");
    let (url, got) = receiver().await;
    let down = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let config = example_config(|t| {
        format!(
            "{t}\n[[notify]]\nkind = \"webhook\"\nurl_env = \"TEST_NOTIFY_URL\"\napps = [\"web\"]\n\n[[notify]]\nkind = \"slack\"\nurl_env = \"TEST_SLACK_URL\"\nevents = [\"rolled-back\", \"completed\"]\n"
        )
    });
    let mut serve = Serve::start(
        &dir.0,
        &config,
        &[
            ("TEST_NOTIFY_URL", url),
            ("TEST_SLACK_URL", down),
            ("BLUEGREEN_HOOK_SECRET", "notify-secret".into()),
            ("BLUEGREEN_CLOUD_SPEED", "20".into()),
        ],
    );
    let http = reqwest::Client::new();
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web";
    let ok = deploy(&http, &serve.base, &format!("{image}:v2")).await;
    assert_eq!(
        finished(&http, &serve.base, &ok).await["phase"],
        "completed"
    );
    let bad = deploy(&http, &serve.base, &format!("{image}:v3-unhealthy")).await;
    let v = finished(&http, &serve.base, &bad).await;
    assert_eq!(v["phase"], "rolled-back", "{v}");

    let events = until(
        "every event at the receiver",
        Duration::from_secs(30),
        || {
            let got = got.clone();
            let bad = bad.clone();
            async move {
                let got = got.lock().await;
                let done = got.iter().any(|(_, v, _)| {
                    v["deployment"] == bad.as_str() && v["event"] == "rolled-back"
                });
                done.then(|| got.clone())
            }
        },
    )
    .await;
    let of = |id: &str| -> Vec<(String, Value)> {
        events
            .iter()
            .filter(|(_, v, _)| v["deployment"] == id)
            .map(|(_, v, _)| (v["event"].as_str().unwrap().to_string(), v.clone()))
            .collect()
    };
    let first = of(&ok);
    let names: Vec<&str> = first.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["started", "traffic-shifted", "traffic-shifted", "completed"],
        "{first:?}"
    );
    assert_eq!(first[1].1["percent"], 20, "the canary step");
    assert_eq!(first[2].1["percent"], 100);
    let second = of(&bad);
    assert_eq!(second.first().unwrap().0, "started");
    let rolled = &second.last().unwrap().1;
    assert_eq!(rolled["event"], "rolled-back");
    assert!(
        !rolled["reason"].as_str().unwrap_or_default().is_empty(),
        "a reason: {rolled}"
    );
    // Signed like hooks: t=…,v1=HMAC("<t>.<body>"), one delivery id per event.
    let (h, _, raw) = &events[0];
    let sig = h["x-bluegreen-signature"].to_str().unwrap();
    let t: u64 = sig[2..sig.find(',').unwrap()].parse().unwrap();
    assert_eq!(
        sig,
        bluegreen_svc::notify::signature(b"notify-secret", t, raw)
    );
    assert_eq!(h["x-bluegreen-delivery"], format!("{ok}-1").as_str());

    // The down Slack receiver: its two events were tried and given up, and counted.
    let text = until(
        "the failed deliveries in /metrics",
        Duration::from_secs(60),
        || {
            let url = format!("{}/metrics", serve.base);
            let http = http.clone();
            async move {
                let text = http.get(url).send().await.ok()?.text().await.ok()?;
                (metric(
                    &text,
                    "bluegreen_notifications_total",
                    &["kind=\"slack\"", "result=\"failed\""],
                ) >= 2.0)
                    .then_some(text)
            }
        },
    )
    .await;
    assert!(
        metric(
            &text,
            "bluegreen_notifications_total",
            &["kind=\"webhook\"", "result=\"delivered\""]
        ) >= events.len() as f64,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "bluegreen_notification_retries_total",
            &["kind=\"slack\""]
        ) >= 2.0
    );
    let logs = serve.stderr();
    assert!(
        !logs.contains('\u{1b}'),
        "no ANSI colours in logs that are not a terminal"
    );
    assert_eq!(serve.stop(), Some(0), "{}", serve.stderr());
}

#[test]
fn serve_refuses_a_notify_entry_whose_url_variable_is_unset() {
    let dir = Scratch::new("notify-unset");
    let config = example_config(|t| {
        format!("{t}\n[[notify]]\nkind = \"slack\"\nurl_env = \"TEST_UNSET_SLACK_URL\"\n")
    });
    std::fs::write(dir.0.join("bluegreen.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bluegreen"))
        .args([
            "--config",
            "bluegreen.toml",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(&dir.0)
        .env_remove("TEST_UNSET_SLACK_URL")
        .env(
            "BLUEGREEN_SERVER_STORE",
            format!("sqlite://{}", dir.0.join("b.db").display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notify[0].url_env") && stderr.contains("TEST_UNSET_SLACK_URL"),
        "{stderr}"
    );
}

/// `bluegreen deploy --local` (no server: the deployment runs in the CLI's own process)
/// notifies as a server does, and its last event has reached the receiver by the time
/// the command exits — the process flushes its queues (bounded) before it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_local_notifies_and_delivers_its_last_event_before_exiting() {
    let dir = Scratch::new("notify-local");
    let (url, got) = receiver().await;
    let config = example_config(|t| {
        format!("{t}\n[[notify]]\nkind = \"webhook\"\nurl_env = \"TEST_NOTIFY_URL\"\n")
    });
    let path = dir.0.join("bluegreen.toml");
    std::fs::write(&path, config).unwrap();
    let store = format!("sqlite://{}", dir.0.join("local.db").display());
    let bin = env!("CARGO_BIN_EXE_bluegreen");
    let out = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["deploy", "web", "--image", "web:v2", "--local", "--json"])
        .env("BLUEGREEN_SERVER_STORE", &store)
        .env("BLUEGREEN_CLOUD_SPEED", "50")
        .env("TEST_NOTIFY_URL", &url)
        .env("BLUEGREEN_HOOK_SECRET", "notify-secret")
        .current_dir(&dir.0)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("deploy --local finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Read at once, with no waiting: the flush happened before the process exited.
    let names: Vec<String> = got
        .lock()
        .await
        .iter()
        .map(|(_, v, _)| v["event"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("started"),
        "{names:?}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("completed"),
        "{names:?}"
    );
}
