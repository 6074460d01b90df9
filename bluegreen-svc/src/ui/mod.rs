//! The status page `bluegreen serve` serves at `/ui`: apps with their live side and
//! weights, each deployment in flight with its phase, a traffic-split timeline, healthy
//! targets per side and the next wake-up, the history with outcomes, and promote / abort
//! / pause / resume buttons.
//!
//! Server-rendered HTML, a stylesheet and a ~40-line script, all compiled into the binary
//! (no build step, no CDN). The script polls `GET /ui/live` every 2 s and swaps `<main>`.
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /` | 303 → `/ui` |
//! | `GET /ui` | the page · 303 → `/ui/login` without a session |
//! | `GET /ui/live` | the page's `<main>` · 401 without a session |
//! | `GET /ui/login`, `POST /ui/login` (`token=`) | the form · 303 → `/ui` with the session cookie · 401 wrong token |
//! | `POST /ui/logout` (`csrf=`) | 303 → `/ui/login`, cookie cleared |
//! | `POST /ui/deployments/{id}/{action}` (`csrf=`) | 303 → `/ui` with the outcome · 403 bad CSRF token |
//! | `GET /ui/assets/style.css`, `/ui/assets/app.js` | the assets |
//!
//! Read access needs the API token: the login form trades it for an `HttpOnly`,
//! `SameSite=Strict` session cookie ([`auth`]); writes carry a CSRF token too. Every
//! answer carries a strict Content-Security-Policy (only this origin's script and
//! stylesheet; no inline script or style).

pub mod auth;
pub mod render;
pub mod timeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bluegreen_core::{Cloud, OperatorRequest};
use serde::Deserialize;

use crate::api::{ApiState, AppView};
use crate::runner::OperateError;
use crate::store::RowState;
use auth::Keys;
use render::{Card, Page};
use timeline::Timeline;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Most deployment cards shown (running and queued).
const CARDS_MAX: i64 = 20;
/// Most history rows shown.
const HISTORY_MAX: i64 = 20;
/// How long the apps' listener reads are reused: a page open in several browsers must
/// not spend the account's ELBv2 budget (DescribeListeners) every poll.
const APPS_TTL: Duration = Duration::from_secs(5);

/// What the page's handlers share besides the API state.
#[derive(Default)]
pub struct UiShared {
    apps: tokio::sync::Mutex<Option<(Instant, Vec<AppView>)>>,
}

/// The status page's routes, merged into the API router.
pub fn routes<C: Cloud + 'static>() -> Router<Arc<ApiState<C>>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(page::<C>))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/live", get(live::<C>))
        .route("/ui/login", get(login_form).post(login::<C>))
        .route("/ui/logout", post(logout::<C>))
        .route("/ui/deployments/{id}/{action}", post(operate::<C>))
        .route(
            "/ui/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .layer(Extension(Arc::new(UiShared::default())))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn keys<C>(s: &ApiState<C>) -> Keys {
    Keys::new(s.api_token.digest())
}

/// The request's valid session, if any.
fn session<C>(s: &ApiState<C>, headers: &HeaderMap) -> Option<String> {
    auth::session_cookie(headers).filter(|v| keys(s).valid(v, auth::wall_secs()))
}

#[derive(Deserialize)]
struct FlashQuery {
    ok: Option<String>,
    error: Option<String>,
}

async fn page<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    Extension(ui): Extension<Arc<UiShared>>,
    headers: HeaderMap,
    query: Result<Query<FlashQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(session) = session(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let flash = query.ok().and_then(|Query(q)| {
        q.ok.map(|m| (true, m))
            .or_else(|| q.error.map(|m| (false, m)))
    });
    match gather(&s, &ui, &session, flash).await {
        Ok(p) => html(StatusCode::OK, render::page(&p)),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<p>the store failed: {}</p>", render::esc(&e)),
        ),
    }
}

async fn live<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    Extension(ui): Extension<Arc<UiShared>>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = session(&s, &headers) else {
        return html(StatusCode::UNAUTHORIZED, "log in again".into());
    };
    match gather(&s, &ui, &session, None).await {
        Ok(p) => html(StatusCode::OK, render::main(&p)),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<p>the store failed: {}</p>", render::esc(&e)),
        ),
    }
}

/// Read what the page shows: apps (listener reads, cached), open deployments with their
/// journals, and the most recent finished ones.
async fn gather<C: Cloud + 'static>(
    s: &Arc<ApiState<C>>,
    ui: &UiShared,
    session: &str,
    flash: Option<(bool, String)>,
) -> Result<Page, String> {
    let store = s.runner.store();
    let now = s.runner.clock().now();
    let apps = {
        let mut cached = ui.apps.lock().await;
        match cached.as_ref() {
            Some((at, apps)) if at.elapsed() < APPS_TTL => apps.clone(),
            _ => {
                let fresh = crate::api::observe_apps(s, crate::api::APPS_PER_PAGE_MAX).await;
                *cached = Some((Instant::now(), fresh.clone()));
                fresh
            }
        }
    };
    let open = store.open().await.map_err(|e| e.to_string())?;
    let mut cards = Vec::new();
    for stored in open.into_iter().take(CARDS_MAX as usize) {
        let journal = if stored.state == RowState::Running {
            store
                .journal(stored.id().as_str())
                .await
                .map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let d = &stored.deployment;
        let timeline = Timeline::build(d, &journal, now);
        let actions = if stored.state == RowState::Queued {
            vec!["abort"]
        } else {
            [
                ("promote", OperatorRequest::Promote),
                ("pause", OperatorRequest::Pause),
                ("resume", OperatorRequest::Resume),
                ("abort", OperatorRequest::Abort { reason: None }),
            ]
            .into_iter()
            .filter(|(_, r)| d.check_operator(r).is_ok())
            .map(|(n, _)| n)
            .collect()
        };
        cards.push(Card {
            stored,
            timeline,
            actions,
        });
    }
    let history: Vec<_> = store
        .list(None, HISTORY_MAX * 2)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| !r.state.is_open())
        .take(HISTORY_MAX as usize)
        .collect();
    let apps: Vec<AppView> = apps;
    Ok(Page {
        apps,
        cards,
        history,
        csrf: keys(s).csrf(session),
        now,
        flash,
    })
}

async fn login_form() -> Response {
    html(StatusCode::OK, render::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return html(
            StatusCode::BAD_REQUEST,
            render::login(Some("the form must carry a token field")),
        );
    };
    // After LOGIN_FAILURES_BURST wrong tokens every login waits for the bucket to refill
    // (whatever it carries), so guessing runs at 10 a minute, not at the server's speed.
    if let Err(wait) = s.login_failures.check() {
        crate::telemetry::rate_limited("login");
        let secs = wait.as_secs().max(1);
        let mut r = html(
            StatusCode::TOO_MANY_REQUESTS,
            render::login(Some(&format!(
                "Too many wrong tokens: try again in {secs} s."
            ))),
        );
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if !s.api_token.matches(&form.token) {
        tracing::warn!("status page: a login with a wrong token");
        let _ = s.login_failures.take();
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(Some("That is not the API token.")),
        );
    }
    let value = keys(&s).issue(auth::wall_secs());
    (
        [(header::SET_COOKIE, auth::set_cookie(&value))],
        Redirect::to("/ui"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(session) = session(&s, &headers)
        && !form.is_ok_and(|Form(f)| keys(&s).csrf_ok(&session, &f.csrf))
    {
        return html(StatusCode::FORBIDDEN, "bad or missing CSRF token".into());
    }
    (
        [(header::SET_COOKIE, auth::clear_cookie())],
        Redirect::to("/ui/login"),
    )
        .into_response()
}

async fn operate<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(session) = session(&s, &headers) else {
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(Some("log in first")),
        );
    };
    if !form.is_ok_and(|Form(f)| keys(&s).csrf_ok(&session, &f.csrf)) {
        return html(
            StatusCode::FORBIDDEN,
            "bad or missing CSRF token: reload the page and try again".into(),
        );
    }
    let request = match action.as_str() {
        "promote" => OperatorRequest::Promote,
        "abort" => OperatorRequest::Abort {
            reason: Some("aborted from the status page".into()),
        },
        "pause" => OperatorRequest::Pause,
        "resume" => OperatorRequest::Resume,
        other => {
            return html(
                StatusCode::NOT_FOUND,
                format!(
                    "no action {} (promote, abort, pause, resume)",
                    render::esc(other)
                ),
            );
        }
    };
    let outcome = match s.runner.operate(&id, request).await {
        Ok(()) => Ok(format!("{action} accepted for {id}")),
        Err(OperateError::Refused(r)) => Err(format!("{action} refused for {id}: {r}")),
        Err(e) => Err(format!("{action} failed for {id}: {e}")),
    };
    let (key, text) = match outcome {
        Ok(t) => ("ok", t),
        Err(t) => ("error", t),
    };
    Redirect::to(&format!("/ui?{key}={}", query_escape(&text))).into_response()
}

/// Percent-encode a query value.
fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
