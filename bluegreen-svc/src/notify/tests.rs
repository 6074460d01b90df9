//! Notifications: which events a turn produces, their formats, and delivery to a
//! receiver on loopback (one that answers, one that is down).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use tokio::sync::Mutex;

use super::*;

fn t(at: u64, from: PhaseName, to: PhaseName, reason: &str) -> Transition {
    Transition {
        at: Timestamp::from_millis(at),
        from,
        to,
        reason: reason.into(),
    }
}

#[test]
fn a_new_deployment_starts_and_a_resumed_one_reports_only_what_follows() {
    let (events, seen) = diff(None, &[], 0, None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, EventKind::Started);
    assert_eq!(seen.events, 1);
    let history = vec![t(1, PhaseName::Preflight, PhaseName::CreateGreen, "ok")];
    let (events, seen) = diff(None, &history, 0, None);
    assert!(events.is_empty(), "resumed: nothing old is repeated");
    assert_eq!(seen.transitions, 1);
}

#[test]
fn approval_shifts_and_the_outcome_come_in_order_with_percent_and_reason() {
    use PhaseName::*;
    let mut h = vec![t(1, Preflight, CreateGreen, "")];
    let s0 = Seen {
        transitions: 1,
        green: 0,
        events: 1,
    };
    h.push(t(2, HealthCheck, Approval, "gate"));
    let (e, s1) = diff(Some(s0), &h, 0, None);
    assert_eq!(
        e.iter().map(|x| x.0).collect::<Vec<_>>(),
        [EventKind::AwaitingApproval]
    );
    let (e, s2) = diff(Some(s1), &h, 20, None);
    assert_eq!(e[0].0, EventKind::TrafficShifted);
    assert_eq!(e[0].1, Some(20));
    h.push(t(3, Shift, Rollback, "alarm web-5xx in ALARM"));
    h.push(t(4, Rollback, RolledBack, "done"));
    let (e, s3) = diff(Some(s2), &h, 0, Some("alarm: web-5xx in ALARM".into()));
    assert_eq!(
        e.iter().map(|x| x.0).collect::<Vec<_>>(),
        [EventKind::TrafficShifted, EventKind::RolledBack]
    );
    assert_eq!(e[0].1, Some(0));
    assert_eq!(e[1].2.as_deref(), Some("alarm: web-5xx in ALARM"));
    assert_eq!(s3.events, 5);
    let (e, _) = diff(Some(s3), &h, 0, None);
    assert!(e.is_empty(), "nothing new, nothing sent");
}

#[test]
fn targets_need_their_url_variable_and_webhooks_a_secret() {
    let entry = NotifyConfig {
        kind: NotifyKind::Webhook,
        url_env: "HOOK_URL".into(),
        apps: vec![],
        events: vec![],
    };
    let e = Notifier::targets(std::slice::from_ref(&entry), |_| None, Some(b"k")).unwrap_err();
    assert!(
        e.contains("notify[0].url_env") && e.contains("HOOK_URL"),
        "{e}"
    );
    let url = |_: &str| Some("http://127.0.0.1:9/".to_string());
    let e = Notifier::targets(std::slice::from_ref(&entry), url, None).unwrap_err();
    assert!(e.contains("BLUEGREEN_HOOK_SECRET"), "{e}");
    let e = Notifier::targets(
        std::slice::from_ref(&entry),
        |_| Some("ftp://x".into()),
        Some(b"k"),
    )
    .unwrap_err();
    assert!(e.contains("http(s)"), "{e}");
    assert_eq!(
        Notifier::targets(&[entry], url, Some(b"k")).unwrap().len(),
        1
    );
}

#[test]
fn the_signature_is_the_hooks_scheme_over_time_and_body() {
    let s = signature(b"secret", 1700000000, b"{}");
    assert!(s.starts_with("t=1700000000,v1="), "{s}");
    assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
    assert_ne!(s, signature(b"secret", 1700000001, b"{}"));
}

#[test]
fn slack_text_carries_percent_and_reason() {
    let mut e = Event {
        event: EventKind::TrafficShifted,
        app: "web".into(),
        deployment: "web-1".into(),
        image: "web:v2".into(),
        percent: Some(20),
        reason: None,
        at: Timestamp::from_millis(0),
        seq: 2,
    };
    assert!(e.text().contains("20 %"), "{}", e.text());
    e.event = EventKind::RolledBack;
    e.reason = Some("green unhealthy".into());
    assert!(e.text().contains("green unhealthy"));
}

type Seen2 = Arc<Mutex<Vec<(HeaderMap, serde_json::Value, Bytes)>>>;

async fn receiver() -> (String, Seen2) {
    let got: Seen2 = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
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

/// A loopback address nothing listens on (bound, then released).
async fn down_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    drop(l);
    url
}

fn event(kind: EventKind, seq: u32) -> Event {
    Event {
        event: kind,
        app: "web".into(),
        deployment: "web-1".into(),
        image: "web:v2".into(),
        percent: (kind == EventKind::TrafficShifted).then_some(10),
        reason: None,
        at: Timestamp::from_millis(1),
        seq,
    }
}

#[tokio::test]
async fn delivery_posts_signed_json_and_slack_text_and_a_down_receiver_only_costs_its_retries() {
    let (url, got) = receiver().await;
    let down = down_url().await;
    let targets = [
        Target {
            kind: NotifyKind::Webhook,
            url: url.clone(),
            apps: vec![],
            events: vec![],
        },
        Target {
            kind: NotifyKind::Slack,
            url,
            apps: vec![],
            events: vec![EventKind::Completed],
        },
        Target {
            kind: NotifyKind::Webhook,
            url: down,
            apps: vec![],
            events: vec![],
        },
    ];
    let (tx_down, rx_down) = mpsc::channel(QUEUE_MAX);
    let notifier = Notifier::start(targets[..2].to_vec(), Some(b"k".to_vec()));
    // The down receiver's loop is driven here so the test can see it finish.
    let down_task = tokio::spawn(deliver::run(
        targets[2].clone(),
        deliver::client(),
        Some(b"k".to_vec()),
        rx_down,
    ));
    let started = Instant::now();
    for (i, kind) in [
        EventKind::Started,
        EventKind::TrafficShifted,
        EventKind::Completed,
    ]
    .into_iter()
    .enumerate()
    {
        let e = event(kind, i as u32 + 1);
        for (target, tx) in &notifier.targets {
            if target.wants(&e) {
                tx.try_send(Queued::Event(e.clone())).unwrap();
            }
        }
        tx_down.try_send(Queued::Event(e)).unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "queueing never waits for delivery"
    );
    drop(tx_down);
    // A flush returns once everything queued before it is delivered: what a short-lived
    // `deploy --local` relies on to not lose its last event.
    assert!(
        notifier.flush(Duration::from_secs(20)).await,
        "both queues drained"
    );
    let got = got.lock().await;
    assert_eq!(
        got.len(),
        4,
        "every delivery arrived before the flush answered"
    );
    let webhook: Vec<_> = got
        .iter()
        .filter(|(_, v, _)| v.get("event").is_some())
        .collect();
    assert_eq!(
        webhook
            .iter()
            .map(|(_, v, _)| v["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["started", "traffic-shifted", "completed"],
        "in order"
    );
    assert_eq!(webhook[1].1["percent"], 10);
    let (h, _, raw) = webhook[0];
    let sig = h[SIGNATURE_HEADER].to_str().unwrap();
    let t: u64 = sig
        .strip_prefix("t=")
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        signature(b"k", t, raw),
        "the signature verifies over t.body"
    );
    assert_eq!(h[DELIVERY_HEADER], "web-1-1");
    let slack: Vec<_> = got
        .iter()
        .filter(|(_, v, _)| v.get("text").is_some())
        .collect();
    assert_eq!(slack.len(), 1, "the slack entry filters to completed");
    assert!(slack[0].1["text"].as_str().unwrap().contains("completed"));
    // The down receiver: every event tried ATTEMPTS_MAX times with backoff, then given up.
    tokio::time::timeout(Duration::from_secs(60), down_task)
        .await
        .expect("the down receiver's deliveries end (bounded retries)")
        .unwrap();
}
