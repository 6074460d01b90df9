//! The HTTP API and the ECR webhook (DESIGN §5), on axum.
//!
//! | method, path | auth | answer |
//! |---|---|---|
//! | `POST /v1/deployments` | API token | 201 (new, running or queued) · 200 (same app + image already queued/running) · 404 unknown app · 409 app busy · 422 bad field |
//! | `GET /v1/deployments[?app=&limit=]` | API token | 200 list, most recent first |
//! | `GET /v1/deployments/{id}` | API token | 200 the deployment with its plan and transitions · 404 |
//! | `GET /v1/deployments/{id}/journal` | API token | 200 JSON lines (the journal `bluegreen-sim replay` reads) |
//! | `POST /v1/deployments/{id}/promote·abort·pause·resume` | API token | 202 · 404 · 409 |
//! | `POST /v1/webhooks/ecr` | webhook token | 202 · 200 ignored / repeat · 422 |
//! | `POST /v1/webhooks/cloudwatch` | webhook token | 202 rolled back · 200 ignored · 503 retry · 422 |
//! | `GET /v1/apps` | API token | 200 apps with live side and weights read from the listener |
//! | `POST /v1/apps/{app}/release` | API | 200: a held app (a deployment failed) takes deployments again |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | none | liveness; readiness (store and lease); Prometheus text |
//!
//! Every request gets an `x-request-id` (kept when the client sent one) and a trace
//! span; bodies over 64 KiB are answered 413; requests over the configured timeout 408.

pub mod alarms;
mod apps;
mod deployments;
pub mod error;
pub mod limits;
pub mod listen;
pub mod webhook;

pub use apps::ListenerCache;
pub use limits::RateLimit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bluegreen_core::Cloud;
use metrics_exporter_prometheus::PrometheusHandle;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::AppConfig;
use crate::runner::Runner;
pub use apps::{APPS_PER_PAGE_MAX, AppView, observe_apps};
pub use deployments::DeploymentView;
pub use error::ApiError;

/// A stored deployment as the API shows it (the CLI's in-process mode uses it too).
pub fn deployments_view(s: &crate::store::Stored, with_plan: bool) -> DeploymentView {
    DeploymentView::of(s, with_plan)
}

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// A bearer token, kept as its SHA-256 so comparisons take the same time whatever the
/// candidate's length or content.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
    /// The token `value`, trimmed like every presented token is.
    pub fn new(value: &str) -> Self {
        Token(Sha256::digest(value.trim().as_bytes()).into())
    }

    /// Does `candidate` equal this token? Constant-time (status page login).
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.trim().as_bytes()).into();
        bool::from(digest.ct_eq(&self.0))
    }

    /// The token's SHA-256 (the status page derives its session key from it).
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// Does the request carry `Authorization: Bearer <this token>`?
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(candidate) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(candidate.trim().as_bytes()).into();
        bool::from(digest.ct_eq(&self.0))
    }
}

/// Failed logins allowed at once, then per minute, for the whole server.
pub const LOGIN_FAILURES_BURST: u32 = 5;
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 10;

/// What the handlers share.
pub struct ApiState<C> {
    pub runner: Runner<C>,
    pub apps: Arc<Vec<AppConfig>>,
    pub api_token: Token,
    pub webhook_token: Token,
    pub metrics: Option<PrometheusHandle>,
    /// Per-token rate limits (429 with `Retry-After` over them).
    pub api_limit: RateLimit,
    pub webhook_limit: RateLimit,
    /// Failed status-page logins: once spent, every login waits (429) for a refill, so
    /// the token cannot be guessed at the server's speed.
    pub login_failures: RateLimit,
    /// `GET /v1/apps`' listener reads, reused for `server.apps_cache_ttl`.
    pub listeners: ListenerCache,
}

impl<C> ApiState<C> {
    /// The state for `config`'s `[server]` limits.
    pub fn new(
        runner: Runner<C>,
        config: &crate::config::Config,
        api_token: &str,
        webhook_token: &str,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let s = &config.server;
        ApiState {
            runner,
            apps: Arc::new(config.apps.clone()),
            api_token: Token::new(api_token),
            webhook_token: Token::new(webhook_token),
            metrics,
            api_limit: RateLimit::new("api", s.api_rate, s.api_burst),
            webhook_limit: RateLimit::new("webhook", s.webhook_rate, s.webhook_burst),
            login_failures: RateLimit::new(
                "login",
                LOGIN_FAILURES_PER_MINUTE,
                LOGIN_FAILURES_BURST,
            ),
            listeners: ListenerCache::new(Duration::from_millis(s.apps_cache_ttl)),
        }
    }

    fn authorize(token: &Token, limit: &RateLimit, headers: &HeaderMap) -> Result<(), ApiError> {
        if !token.admits(headers) {
            return Err(ApiError::unauthorized());
        }
        limit.take().map_err(|wait| {
            crate::telemetry::rate_limited(limit.label());
            ApiError::rate_limited(limit.label(), wait)
        })
    }

    fn authorize_api(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        Self::authorize(&self.api_token, &self.api_limit, headers)
    }

    fn authorize_webhook(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        Self::authorize(&self.webhook_token, &self.webhook_limit, headers)
    }
}

type Shared<C> = State<Arc<ApiState<C>>>;

/// Request ids `<process-start-ms hex>-<n>`: unique per process, cheap, no RNG needed.
#[derive(Clone)]
struct Ids {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

/// The router with every layer: request id, trace, JSON errors, timeout, body limit.
pub fn router<C: Cloud + 'static>(state: Arc<ApiState<C>>, request_timeout: Duration) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let ids = Ids {
        prefix: format!("{:x}", state.runner.clock().now().as_millis()).into(),
        next: Arc::new(AtomicU64::new(1)),
    };
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
    });
    Router::new()
        .route(
            "/v1/deployments",
            post(deployments::create::<C>).get(deployments::list::<C>),
        )
        .route("/v1/deployments/{id}", get(deployments::show::<C>))
        .route(
            "/v1/deployments/{id}/journal",
            get(deployments::journal::<C>),
        )
        .route(
            "/v1/deployments/{id}/{action}",
            post(deployments::operate::<C>),
        )
        .route("/v1/webhooks/ecr", post(webhook::ecr::<C>))
        .route("/v1/webhooks/cloudwatch", post(alarms::cloudwatch::<C>))
        .route("/v1/apps", get(apps::list::<C>))
        .route("/v1/apps/{app}/release", post(apps::release::<C>))
        .route("/healthz", get(healthz::<C>))
        .route("/readyz", get(readyz::<C>))
        .route("/metrics", get(metrics::<C>))
        .merge(crate::ui::routes::<C>())
        .with_state(state)
        // Listed innermost first: the body limit and timeout answer inside the JSON-error
        // mapper, which runs inside the trace span, which sees the request id.
        .layer(RequestBodyLimitLayer::new(BODY_BYTES_MAX))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(x_request_id, ids))
}

async fn healthz<C: Cloud + 'static>(State(s): Shared<C>) -> Response {
    let body = serde_json::json!({
        "status": if s.runner.is_stopping() { "stopping" } else { "ok" },
        "deployments_running": s.runner.running(),
    });
    axum::Json(body).into_response()
}

/// Readiness: this replica can take work — the store answers and its lease is good
/// (503 otherwise, with the reason). Liveness stays `/healthz`.
async fn readyz<C: Cloud + 'static>(State(s): Shared<C>) -> Response {
    match s.runner.ready() {
        Ok(()) => axum::Json(serde_json::json!({
            "status": "ready",
            "replica": s.runner.replica_id(),
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "not_ready",
                "reason": reason,
                "replica": s.runner.replica_id(),
            })),
        )
            .into_response(),
    }
}

async fn metrics<C: Cloud + 'static>(State(s): Shared<C>) -> Response {
    match &s.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_metrics",
            "another metrics recorder was installed in this process",
        )
        .into_response(),
    }
}

/// Parse a JSON body: not JSON → 400; the caller then checks fields (422 naming them).
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::malformed(&e))
}

/// The object's fields, refusing any not in `allowed`.
pub(crate) fn object<'a>(
    value: &'a serde_json::Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, serde_json::Value>, ApiError> {
    let map = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "the body must be a JSON object"))?;
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            format!("unknown field {k:?} (allowed: {})", allowed.join(", ")),
        ));
    }
    Ok(map)
}

pub(crate) fn string_field(
    map: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<String, ApiError> {
    match map.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {
            ApiError::check_printable(key, s)?;
            Ok(s.clone())
        }
        Some(serde_json::Value::String(_)) => {
            Err(ApiError::invalid(key, format!("{key} must not be empty")))
        }
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be a string"))),
        None => Err(ApiError::invalid(key, format!("{key} is required"))),
    }
}
