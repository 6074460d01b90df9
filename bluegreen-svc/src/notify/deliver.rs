//! Posting one entry's events, in order, with bounded retries.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{Event, NOTIFICATION_RETRIES_TOTAL, NOTIFICATIONS_TOTAL, NotifyKind, Queued, Target};

/// Attempts per event before it counts as failed.
pub const ATTEMPTS_MAX: u32 = 4;
/// Longest one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause between attempts (doubling, at most [`BACKOFF_MAX`]).
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The signature header (the hooks' format: `t=<unix seconds>,v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-bluegreen-signature";
/// The same id on every attempt of one delivery, so a receiver can drop repeats.
pub const DELIVERY_HEADER: &str = "x-bluegreen-delivery";
const EVENT_HEADER: &str = "x-bluegreen-event";

type HmacSha256 = Hmac<Sha256>;

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">` — the hooks' signature (DESIGN §5).
/// The one place notifications sign, so it follows the hooks' scheme in one edit.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bluegreen/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("a TLS client with the built-in roots")
}

fn body(kind: NotifyKind, e: &Event) -> Vec<u8> {
    let value = match kind {
        NotifyKind::Slack => serde_json::json!({ "text": e.text() }),
        NotifyKind::Webhook => serde_json::to_value(e).expect("events serialise"),
    };
    serde_json::to_vec(&value).expect("JSON serialises")
}

/// One entry's delivery loop: ends when the notifier is dropped. A flush is answered
/// once every event queued before it was delivered or given up.
pub(super) async fn run(
    target: Target,
    client: reqwest::Client,
    secret: Option<Vec<u8>>,
    mut rx: mpsc::Receiver<Queued>,
) {
    while let Some(q) = rx.recv().await {
        let e = match q {
            Queued::Event(e) => e,
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let delivered = deliver(&target, &client, secret.as_deref(), &e).await;
        let result = if delivered { "delivered" } else { "failed" };
        metrics::counter!(NOTIFICATIONS_TOTAL, "kind" => target.kind.as_str(), "result" => result)
            .increment(1);
    }
}

async fn deliver(
    target: &Target,
    client: &reqwest::Client,
    secret: Option<&[u8]>,
    e: &Event,
) -> bool {
    let body = body(target.kind, e);
    let delivery = format!("{}-{}", e.deployment, e.seq);
    let mut pause = BACKOFF_MIN;
    for attempt in 1..=ATTEMPTS_MAX {
        let mut request = client
            .post(&target.url)
            .timeout(ATTEMPT_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, e.event.as_str())
            .header(DELIVERY_HEADER, delivery.as_str());
        if let (NotifyKind::Webhook, Some(secret)) = (target.kind, secret) {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            request = request.header(SIGNATURE_HEADER, signature(secret, t, &body));
        }
        let outcome = match request.body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                let s = r.status().as_u16();
                // A 4xx other than 408/429 will not change on retry (a revoked Slack URL).
                if (400..500).contains(&s) && s != 408 && s != 429 {
                    tracing::warn!(
                        kind = target.kind.as_str(),
                        event = e.event.as_str(),
                        status = s,
                        "notification refused"
                    );
                    return false;
                }
                format!("HTTP {s}")
            }
            Err(err) => err.to_string(),
        };
        if attempt < ATTEMPTS_MAX {
            metrics::counter!(NOTIFICATION_RETRIES_TOTAL, "kind" => target.kind.as_str())
                .increment(1);
            tracing::debug!(attempt, error = %outcome, "notification failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(BACKOFF_MAX);
        } else {
            tracing::warn!(kind = target.kind.as_str(), event = e.event.as_str(), deployment = %e.deployment, error = %outcome, "notification not delivered after {ATTEMPTS_MAX} attempts");
        }
    }
    false
}
