//! The one error shape every endpoint answers with:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// On 5xx answers: the request id the log's detail is filed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What a 500 says: the detail (a database's or AWS's own text) goes to the log only.
pub const INTERNAL_MESSAGE: &str =
    "internal error: the server's log has the detail under this request id";

/// `Retry-After` on a 503 for a store that is not answering: about a pool's wait.
pub const STORE_RETRY_AFTER_S: u64 = 5;

/// An API error: a status and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds for a `Retry-After` header (429, and 503 for a store not answering).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
                field: None,
                request_id: None,
            },
            retry_after: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }

    /// 429: the token's rate is used up; retry after `wait` (rounded up to seconds).
    pub fn rate_limited(token: &str, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests with the {token} token; retry in {secs} s"),
        );
        e.retry_after = Some(secs.max(1));
        e
    }

    pub fn malformed(e: &serde_json::Error) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// A 500: the detail is logged (inside the request's span, so with its request id),
    /// the client gets [`INTERNAL_MESSAGE`] and the request id.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL_MESSAGE,
        )
    }

    /// A store error: 503 `store_unavailable` with `Retry-After` when the store is not
    /// answering right now (nothing was done; a webhook sender or client retries), else
    /// a 500 as [`ApiError::internal`].
    pub fn store(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "the store is not answering");
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the deployment store is not answering right now; nothing was done, retry shortly",
            );
            err.retry_after = Some(STORE_RETRY_AFTER_S);
            return err;
        }
        ApiError::internal(e)
    }

    /// 422 when `value` holds a control character (they would reach logs, journals and
    /// operators' terminals: an escape sequence can rewrite what a terminal shows).
    pub fn check_printable(field: &str, value: &str) -> Result<(), ApiError> {
        match value.chars().position(char::is_control) {
            None => Ok(()),
            Some(at) => Err(ApiError::invalid(
                field,
                format!("{field} must not contain control characters (one at character {at})"),
            )),
        }
    }

    /// The error for a bare status (answers the framework made: unknown route, body too
    /// large, timeout).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "the request could not be read"),
            404 => ("not_found", "no such endpoint"),
            405 => (
                "method_not_allowed",
                "this endpoint does not take that method",
            ),
            408 => ("timeout", "the request took too long"),
            413 => ("payload_too_large", "the body is larger than 64 KiB"),
            415 => ("unsupported_media_type", "send a JSON body"),
            _ if status.is_server_error() => ("internal", INTERNAL_MESSAGE),
            _ => ("error", "the request failed"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.body }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Largest error body the middleware re-reads to add the request id (ours are small).
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// Middleware: an error answer that is not already JSON (the framework's own 404, 405,
/// 413, 408 …) gets the standard error body, so clients parse one shape; every 5xx body
/// also gets the request id (`x-request-id`), under which the log holds the detail.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The status page's own HTML answers (login errors, refusals) pass through as they are.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !status.is_server_error() {
        return if is_json || is_html {
            response
        } else {
            ApiError::for_status(status).into_response()
        };
    }
    let (parts, body) = response.into_parts();
    let mut error = ApiError::for_status(status);
    if is_json
        && let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_BYTES_MAX).await
        && let Ok(wrapped) = serde_json::from_slice::<Wrapped>(&bytes)
    {
        error.body = wrapped.error;
    }
    error.body.request_id = request_id;
    let mut rebuilt = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

#[derive(Deserialize)]
struct Wrapped {
    error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_store_that_does_not_answer_is_a_503_to_retry_and_a_broken_row_a_500() {
        for unavailable in [
            StoreError::Db(sqlx::Error::PoolTimedOut),
            StoreError::Db(sqlx::Error::PoolClosed),
            StoreError::Db(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
            StoreError::WriterGone,
        ] {
            let e = ApiError::store(unavailable);
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.body.code, "store_unavailable");
            assert_eq!(e.retry_after, Some(STORE_RETRY_AFTER_S));
            let response = e.into_response();
            assert_eq!(
                response.headers().get(header::RETRY_AFTER),
                Some(&HeaderValue::from(STORE_RETRY_AFTER_S))
            );
        }
        let e = ApiError::store(StoreError::Corrupt {
            id: "web-1".into(),
            reason: "bad json".into(),
        });
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.body.message, INTERNAL_MESSAGE,
            "the detail stays in the log"
        );
        assert_eq!(e.retry_after, None);
    }
}
