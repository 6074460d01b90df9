//! Hooks over HTTP: a [`Cloud`] wrapper that executes `CallHook` commands itself and
//! hands every other command to the cloud it wraps (the AWS adapter or the simulated
//! world, which do not call URLs).
//!
//! The request: `POST <url>` with the JSON [`HookPayload`] as the body and
//! `X-Bluegreen-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with
//! BLUEGREEN_HOOK_SECRET>`. A receiver recomputes the HMAC over the raw body and compares
//! in constant time ([`verify`]); the body's `deployment`, `stage` and `call` make each
//! call unique, so a receiver can refuse replays.
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
/// Most bytes of a hook's answer read (the rest is ignored).
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Longest reason quoted from an answer.
const REASON_CHARS_MAX: usize = 300;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Does `header` (`sha256=<hex>`) sign `body` with `secret`? Constant-time comparison.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
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

    async fn call(&self, call: &HookCall) -> Result<CommandResult, CommandError> {
        let body = serde_json::to_vec(&call.payload).expect("payloads serialise");
        let mut request = self
            .client
            .post(&call.url)
            .timeout(Duration::from_millis(call.timeout_ms))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-bluegreen-hook", call.name.as_str())
            .header("x-bluegreen-deployment", call.payload.deployment.as_str());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
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
            CommandKind::CallHook(call) => self.call(call).await,
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
    fn signatures_verify_and_tampering_fails() {
        let s = sign(b"k", b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify(b"k", b"{\"a\":1}", &s));
        assert!(!verify(b"k", b"{\"a\":2}", &s));
        assert!(!verify(b"other", b"{\"a\":1}", &s));
        assert!(!verify(b"k", b"{\"a\":1}", "sha256=zz"));
        assert!(!verify(b"k", b"{\"a\":1}", "md5=00"));
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
