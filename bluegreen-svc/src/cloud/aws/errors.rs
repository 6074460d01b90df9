//! Failure classification: every SDK error becomes a [`CommandError`] whose class tells
//! the machine what it may do next.
//!
//! | what happened | read | idempotent write | non-idempotent write |
//! |---|---|---|---|
//! | throttled (`Throttling*`, `TooManyRequests*`, HTTP 429) | Retryable | Retryable | Retryable |
//! | 5xx / `InternalFailure` / `ServiceUnavailable` / `ServerException` | Retryable | Retryable | **Ambiguous** |
//! | connection never made (refused, DNS, connect timeout) | Retryable | Retryable | Retryable |
//! | sent, answer lost (read timeout, reset, operation timeout, unreadable answer) | Retryable | **Ambiguous** | **Ambiguous** |
//! | any other 4xx (validation, access denied, not found) | Fatal | Fatal | Fatal |
//! | request could not be built | Fatal | Fatal | Fatal |
//!
//! Fatal errors keep AWS's own error code and message. A 5xx on `RegisterTaskDefinition`
//! (the one write with no idempotency token) is Ambiguous because the revision may have
//! been registered before the server failed: the machine looks for it before registering
//! again. Every other write is desired state or carries a client token, so re-sending it
//! after a 5xx is safe.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use bluegreen_core::{CommandError, ErrorClass};

/// What a call does to AWS, which decides how a lost answer is classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Read,
    /// Desired state (`UpdateService`, `ModifyListener`, …) or carrying a client token.
    IdempotentWrite,
    /// Sending it twice has a different effect than once (`RegisterTaskDefinition`).
    Write,
}

impl Effect {
    fn writes(self) -> bool {
        self != Effect::Read
    }
}

/// Error codes AWS services use for throttling (ECS, ELBv2 and CloudWatch among them).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes that mean "the service failed, try again" whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Is this the `metrics` result label `throttled`?
pub(crate) fn is_throttling(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Classify an SDK error of operation `op`.
pub(crate) fn classify<E>(op: &str, effect: Effect, err: &SdkError<E, HttpResponse>) -> CommandError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let lost = |code: &str, what: String| {
        if effect.writes() {
            CommandError::ambiguous(
                code,
                format!("{op}: {what}; the write may or may not have been applied"),
            )
        } else {
            CommandError::retryable(code, format!("{op}: {what}"))
        }
    };
    match err {
        SdkError::ConstructionFailure(_) => CommandError::fatal(
            "InvalidRequest",
            format!("{op}: the request could not be built: {}", chain(err)),
        ),
        SdkError::TimeoutError(_) => lost("Timeout", format!("no answer in time: {}", chain(err))),
        SdkError::DispatchFailure(d) => {
            if never_sent(err) {
                CommandError::retryable(
                    "ConnectionFailed",
                    format!("{op}: could not connect: {}", chain(err)),
                )
            } else if d.is_user() {
                CommandError::fatal("InvalidRequest", format!("{op}: {}", chain(err)))
            } else if d.is_timeout() {
                lost("Timeout", format!("no answer in time: {}", chain(err)))
            } else {
                lost(
                    "ConnectionLost",
                    format!("the connection failed: {}", chain(err)),
                )
            }
        }
        SdkError::ResponseError(_) => lost(
            "BadResponse",
            format!("the answer could not be read: {}", chain(err)),
        ),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            let code = e
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("Http{status}"));
            let message = e
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status} without a message"));
            let message = format!("{op}: {message}");
            if is_throttling(&code) || status == 429 {
                CommandError::throttled(code, message)
            } else if status >= 500 || TRANSIENT_CODES.contains(&code.as_str()) {
                let class = if effect == Effect::Write {
                    ErrorClass::Ambiguous
                } else {
                    ErrorClass::Retryable
                };
                CommandError::new(class, code, message)
            } else {
                CommandError::fatal(code, message)
            }
        }
        // `SdkError` is non-exhaustive: treat anything new like a lost answer.
        _ => lost("Unknown", chain(err)),
    }
}

/// The error and its sources, one line (bounded: 16 levels).
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    for _ in 0..16 {
        let Some(s) = source else { break };
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Did the request fail before a connection existed (so AWS never saw it)?
fn never_sent(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    for _ in 0..16 {
        let Some(e) = current else { break };
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::AddrNotAvailable
                    | K::HostUnreachable
                    | K::NetworkUnreachable
            ) {
                return true;
            }
        }
        let text = e.to_string();
        // hyper-util: "client error (Connect)"; smithy: "HTTP connect timeout occurred …";
        // DNS: "dns error" / "failed to lookup address".
        if text.contains("(Connect)")
            || text.contains("connect timeout")
            || text.contains("dns error")
            || text.contains("failed to lookup address")
        {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_recognised() {
        assert!(is_throttling("ThrottlingException"));
        assert!(is_throttling("Throttling"));
        assert!(!is_throttling("AccessDeniedException"));
    }
}
