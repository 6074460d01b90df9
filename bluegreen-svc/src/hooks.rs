//! Hooks over HTTP: a [`Cloud`] wrapper that executes `CallHook` commands itself and
//! hands every other command to the cloud it wraps (the AWS adapter or the simulated
//! world, which do not call URLs).
//!
//! The request: `POST <url>` with the JSON [`HookPayload`] as the body and
//! - `X-Bluegreen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed
//!   with `BLUEGREEN_HOOK_SECRET`: the timestamp is signed with the body, so a receiver
//!   rejects a request whose `t` is older than five minutes (a replay) — see [`verify`];
//! - `X-Bluegreen-Delivery: <id>`: the command's id, the same on every retry of one call
//!   (a retry after a 503 or a timeout re-sends the same call), different for every
//!   call. A receiver answers a repeated delivery with its first verdict instead of
//!   failing it as a replay: failing it would roll back a healthy deployment.
//!
//! The verdict:
//! - a JSON body `{"verdict": "pass" | "fail" | "not-yet", "reason": "…"}` on a 2xx or
//!   4xx answer is taken as written (`not-yet`: called again after the hook's interval);
//! - otherwise 2xx passes and 4xx fails (the reason quotes the status and the body);
//! - 408, 429, 5xx, a timeout or a connection failure are `Retryable`: the machine calls
//!   again with backoff until the hook's attempts or deadline run out, then the hook
//!   counts as failed. Redirects are not followed (a 3xx fails).

use std::time::Duration;

use bluegreen_core::{
    Cloud, Command, CommandError, CommandKind, CommandResult, HookCall, HookPayload, HookVerdict,
};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-bluegreen-signature";
/// The delivery id header (stable across retries of one call).
pub const DELIVERY_HEADER: &str = "x-bluegreen-delivery";
/// How old a signed timestamp [`verify`] accepts (and how far in the future).
pub const TOLERANCE_SECS: u64 = 300;
/// Most bytes of a hook's answer read (the rest is ignored).
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Longest reason quoted from an answer.
const REASON_CHARS_MAX: usize = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `t=<t>,v1=<hex>`: the HMAC-SHA256 of `"<t>.<body>"` keyed with `secret`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

/// Why [`verify`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error(
        "the signed time is {0} s away from now (more than {TOLERANCE_SECS} s): a replay or a wrong clock"
    )]
    Stale(u64),
}

/// Check `header` (`t=…,v1=…`) against `body` and `secret` (constant-time) and that `t` is
/// within [`TOLERANCE_SECS`] of `now_secs`. Several `v1=` values are accepted (any may
/// match), so a sender can sign with an old and a new secret while rotating.
pub fn verify(secret: &[u8], body: &[u8], header: &str, now_secs: u64) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.trim().split(',').take(8) {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if !sigs
        .iter()
        .any(|sig| mac(secret, t, body).verify_slice(sig).is_ok())
    {
        return Err(VerifyError::Mismatch);
    }
    let skew = now_secs.abs_diff(t);
    if skew > TOLERANCE_SECS {
        return Err(VerifyError::Stale(skew));
    }
    Ok(())
}

/// The wall clock in Unix seconds, for signatures: the receiver compares it with its own
/// clock, so it is never the runner's (possibly simulated or sped-up) clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A cloud whose hook calls go over HTTP.
pub struct HookedCloud<C> {
    inner: C,
    client: reqwest::Client,
    secret: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct Answer {
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
}

impl<C> HookedCloud<C> {
    /// `secret`: the HMAC key (from `BLUEGREEN_HOOK_SECRET`); `None` sends unsigned
    /// calls (the service refuses to start that way when any app has hooks).
    pub fn new(inner: C, secret: Option<Vec<u8>>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bluegreen/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a TLS client with the built-in roots");
        HookedCloud {
            inner,
            client,
            secret,
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    async fn call(&self, delivery: &str, call: &HookCall) -> Result<CommandResult, CommandError> {
        let body = serde_json::to_vec(&call.payload).expect("payloads serialise");
        let mut request = self
            .client
            .post(call.url.as_str())
            .timeout(Duration::from_millis(call.timeout_ms))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-bluegreen-hook", call.name.as_str())
            .header("x-bluegreen-deployment", call.payload.deployment.as_str())
            .header(DELIVERY_HEADER, delivery);
        if let Some(secret) = &self.secret {
            // Signed at each send: a retry carries a fresh time, the same delivery id.
            request = request.header(SIGNATURE_HEADER, sign(secret, unix_now(), &body));
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(call, &e))?;
        let status = response.status();
        let mut answer = Vec::new();
        // Bounded: stops after ANSWER_BYTES_MAX bytes.
        while answer.len() < ANSWER_BYTES_MAX {
            match response.chunk().await {
                Ok(Some(chunk)) => answer
                    .extend_from_slice(&chunk[..chunk.len().min(ANSWER_BYTES_MAX - answer.len())]),
                Ok(None) => break,
                Err(e) => return Err(transport_error(call, &e)),
            }
        }
        verdict(call, status.as_u16(), &answer).map(CommandResult::Hook)
    }
}

fn transport_error(call: &HookCall, e: &reqwest::Error) -> CommandError {
    let code = if e.is_timeout() {
        "Timeout"
    } else {
        "HookUnreachable"
    };
    CommandError::retryable(code, format!("hook {} at {}: {e}", call.name, call.url))
}

fn quote(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    let mut out: String = text.chars().take(REASON_CHARS_MAX).collect();
    if text.chars().count() > REASON_CHARS_MAX {
        out.push('…');
    }
    out
}

/// The verdict for an HTTP answer (see the module docs).
pub fn verdict(call: &HookCall, status: u16, answer: &[u8]) -> Result<HookVerdict, CommandError> {
    let retryable = status == 408 || status == 429 || status >= 500;
    if retryable {
        return Err(CommandError::retryable(
            format!("Http{status}"),
            format!("hook {} answered {status}: {}", call.name, quote(answer)),
        ));
    }
    let explicit = serde_json::from_slice::<Answer>(answer).ok();
    match (status, explicit) {
        (200..=299 | 400..=499, Some(a)) => match a.verdict.as_str() {
            "pass" => Ok(HookVerdict::Pass),
            "not-yet" => Ok(HookVerdict::NotYet),
            "fail" => Ok(HookVerdict::Fail {
                reason: a
                    .reason
                    .unwrap_or_else(|| format!("the hook answered {status} with verdict fail")),
            }),
            other => Err(CommandError::fatal(
                "BadHookAnswer",
                format!(
                    "hook {} answered an unknown verdict {other:?} (pass, fail, not-yet)",
                    call.name
                ),
            )),
        },
        (200..=299, None) => Ok(HookVerdict::Pass),
        (400..=499, None) => Ok(HookVerdict::Fail {
            reason: format!("HTTP {status}: {}", quote(answer)),
        }),
        _ => Ok(HookVerdict::Fail {
            reason: format!(
                "HTTP {status} (redirects are not followed): {}",
                quote(answer)
            ),
        }),
    }
}

impl<C: Cloud> Cloud for HookedCloud<C> {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        match &command.kind {
            CommandKind::CallHook(call) => self.call(command.id.as_str(), call).await,
            _ => self.inner.execute(command).await,
        }
    }
}

/// The payload a hook receives, re-exported for receivers written in Rust.
pub type Payload = HookPayload;

#[cfg(test)]
mod tests {
    use bluegreen_core::{HookStage, Weights};

    use super::*;

    fn call() -> HookCall {
        HookCall {
            name: "smoke".into(),
            url: "http://127.0.0.1:1/".into(),
            timeout_ms: 1000,
            payload: HookPayload {
                deployment: "web-1".into(),
                app: "web".into(),
                stage: HookStage::GreenReady,
                image: Some("web:v2".into()),
                task_definition: None,
                weights: Weights::ALL_BLUE,
                green_target_group: None,
                call: 1,
            },
        }
    }

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let s = sign(b"k", 1_000, b"{\"a\":1}");
        assert!(s.starts_with("t=1000,v1=") && s.len() == "t=1000,v1=".len() + 64);
        assert_eq!(verify(b"k", b"{\"a\":1}", &s, 1_000), Ok(()));
        assert_eq!(verify(b"k", b"{\"a\":1}", &s, 1_300), Ok(()));
        assert_eq!(
            verify(b"k", b"{\"a\":2}", &s, 1_000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", b"{\"a\":1}", &s, 1_000),
            Err(VerifyError::Mismatch)
        );
        // The time is signed: moving it breaks the signature.
        let moved = s.replace("t=1000", "t=1299");
        assert_eq!(
            verify(b"k", b"{\"a\":1}", &moved, 1_299),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", b"{\"a\":1}", &s, 1_301),
            Err(VerifyError::Stale(301))
        );
        assert_eq!(
            verify(b"k", b"{\"a\":1}", "sha256=00", 1_000),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(b"k", b"{\"a\":1}", "t=1000,v1=zz", 1_000),
            Err(VerifyError::Malformed)
        );
        // Rotation: any of several v1 values may match.
        let both = format!("{s},v1={}", "00".repeat(32));
        assert_eq!(verify(b"k", b"{\"a\":1}", &both, 1_000), Ok(()));
    }

    #[test]
    fn status_codes_map_to_verdicts() {
        let c = call();
        assert_eq!(verdict(&c, 200, b""), Ok(HookVerdict::Pass));
        assert_eq!(verdict(&c, 204, b"ok"), Ok(HookVerdict::Pass));
        assert_eq!(
            verdict(&c, 200, br#"{"verdict":"not-yet"}"#),
            Ok(HookVerdict::NotYet)
        );
        assert_eq!(
            verdict(
                &c,
                200,
                br#"{"verdict":"fail","reason":"smoke test 3 failed"}"#
            ),
            Ok(HookVerdict::Fail {
                reason: "smoke test 3 failed".into()
            })
        );
        assert!(
            matches!(verdict(&c, 403, b"nope"), Ok(HookVerdict::Fail { reason }) if reason.contains("403"))
        );
        assert_eq!(
            verdict(&c, 409, br#"{"verdict":"not-yet"}"#),
            Ok(HookVerdict::NotYet)
        );
        for status in [408, 429, 500, 503] {
            let e = verdict(&c, status, b"busy").unwrap_err();
            assert_eq!(e.class, bluegreen_core::ErrorClass::Retryable, "{status}");
        }
        assert_eq!(
            verdict(&c, 200, br#"{"verdict":"maybe"}"#)
                .unwrap_err()
                .class,
            bluegreen_core::ErrorClass::Fatal
        );
        assert!(matches!(
            verdict(&c, 302, b""),
            Ok(HookVerdict::Fail { .. })
        ));
    }
}
