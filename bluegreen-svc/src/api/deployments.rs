//! `/v1/deployments`: create, list, show, journal, and the operator actions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bluegreen_core::{Cloud, OperatorRequest, Plan, Status, Transition};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, json_body, object, string_field};
use crate::runner::{OperateError, Source, Submit, SubmitError, Submitted};
use crate::store::{Cursor, JOURNAL_PAGE_MAX, RowState, StoreError, Stored};

/// A deployment as the API shows it: the machine's status (phase, weights, sides,
/// healthy targets, reason) plus the service's view (state, image) and, for a single
/// deployment, its plan and transitions.
#[derive(Debug, Serialize)]
pub struct DeploymentView {
    /// The machine's status (serialised through `fields`).
    #[serde(skip)]
    pub status: Status,
    /// `status` as JSON, with `phase` = `queued` while the deployment waits its turn
    /// (the machine has not started it: it is not in preflight yet).
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
    /// Each side's targets by state as last observed (`blue`, `green`): a green that
    /// stays unhealthy shows how many targets are in which state.
    pub targets: Targets,
    /// queued · running · finished · superseded · cancelled
    pub state: RowState,
    pub image: String,
    /// Why it was superseded or cancelled.
    pub note: Option<String>,
    pub transitions: Vec<Transition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl DeploymentView {
    pub fn of(s: &Stored, with_plan: bool) -> Self {
        let d = &s.deployment;
        let status = d.status();
        let mut fields = match serde_json::to_value(&status) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if s.state == RowState::Queued {
            fields.insert("phase".into(), "queued".into());
        }
        let health = |side: &Option<bluegreen_core::machine::SideView>| {
            side.as_ref().and_then(|v| {
                d.knowledge()
                    .target_health
                    .get(&v.target_group)
                    .map(|h| h.value.clone())
            })
        };
        DeploymentView {
            fields,
            targets: Targets {
                blue: health(&status.blue),
                green: health(&status.green),
            },
            status,
            state: s.state,
            image: s.image.clone(),
            note: s.note.clone(),
            transitions: d.history().to_vec(),
            plan: with_plan.then(|| Plan::for_deployment(d.id(), d.spec())),
        }
    }
}

/// Target health per side, as last observed.
#[derive(Debug, Default, Serialize)]
pub struct Targets {
    pub blue: Option<bluegreen_core::TargetHealth>,
    pub green: Option<bluegreen_core::TargetHealth>,
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::UnknownApp(app) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_app",
            format!("no app named {app:?} is configured"),
        )
        .field("app"),
        SubmitError::Conflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "deployment_running", e.to_string()).field("app")
        }
        SubmitError::Invalid(spec) => {
            let field = if spec.field == "id" {
                "app".to_string()
            } else {
                spec.field.clone()
            };
            ApiError::invalid(&field, spec.reason)
        }
        SubmitError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            e.to_string(),
        ),
        SubmitError::Full(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_deployments",
            e.to_string(),
        ),
        SubmitError::Store(e) => ApiError::store(e),
    }
}

async fn view<C: Cloud + 'static>(
    s: &ApiState<C>,
    id: &str,
    with_plan: bool,
) -> Result<DeploymentView, ApiError> {
    let stored = s
        .runner
        .store()
        .get(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::not_found(format!("no deployment {id}")))?;
    Ok(DeploymentView::of(&stored, with_plan))
}

pub async fn create<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    let value = json_body(&body)?;
    let map = object(&value, &["app", "image", "supersede"])?;
    let app = string_field(map, "app")?;
    let image = string_field(map, "image")?;
    let supersede = match map.get("supersede") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "supersede",
                "supersede must be true or false",
            ));
        }
    };
    let submitted = s
        .runner
        .submit(Submit {
            app,
            image,
            source: Source::Api { supersede },
        })
        .await
        .map_err(submit_error)?;
    let (status, id) = match &submitted {
        Submitted::Created { id, .. } => (StatusCode::CREATED, id.to_string()),
        Submitted::Existing { id } => (StatusCode::OK, id.to_string()),
        // An API request for a held app: an operator must release it first.
        Submitted::Ignored(why) => {
            return Err(
                ApiError::new(StatusCode::CONFLICT, "app_held", why.to_string()).field("app"),
            );
        }
    };
    let view = view(&s, &id, true).await?;
    let location = format!("/v1/deployments/{id}");
    Ok((status, [(header::LOCATION, location)], Json(view)).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    app: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

pub async fn list<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("limit", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::store::LIST_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {}", crate::store::LIST_MAX),
        ));
    }
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "after",
                "after must be the `next` cursor of a previous page",
            )
        })?),
    };
    let (rows, next) = s
        .runner
        .store()
        .list_page(q.app.as_deref(), after.as_ref(), limit)
        .await
        .map_err(ApiError::store)?;
    let views: Vec<DeploymentView> = rows.iter().map(|r| DeploymentView::of(r, false)).collect();
    Ok(Json(serde_json::json!({
        "deployments": views,
        "next": next.map(|c| c.to_string()),
    }))
    .into_response())
}

pub async fn show<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    Ok(Json(view(&s, &id, true).await?).into_response())
}

#[derive(Deserialize)]
pub struct JournalQuery {
    /// Lines with a sequence number above this (the `x-bluegreen-next-after` header of
    /// the previous page).
    after: Option<u64>,
    /// One page of at most this many lines; without it, the whole journal is streamed.
    limit: Option<i64>,
}

/// Lines per store read while streaming a whole journal.
const JOURNAL_STREAM_PAGE: i64 = 500;
/// The header naming the last line of a page when more follow.
pub const NEXT_AFTER_HEADER: &str = "x-bluegreen-next-after";

fn ndjson(lines: &[(u64, String)]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, line) in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

pub async fn journal<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<JournalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("after", e.body_text()))?;
    let after = q.after.unwrap_or(0);
    if let Some(limit) = q.limit
        && !(1..=JOURNAL_PAGE_MAX).contains(&limit)
    {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {JOURNAL_PAGE_MAX}"),
        ));
    }
    let store = s.runner.store().clone();
    let first_size = q.limit.map_or(JOURNAL_STREAM_PAGE, |l| l + 1);
    let mut first = store
        .journal_page(&id, after, first_size)
        .await
        .map_err(ApiError::store)?;
    if first.is_empty() && store.get(&id).await.map_err(ApiError::store)?.is_none() {
        return Err(ApiError::not_found(format!("no deployment {id}")));
    }
    let content_type = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if let Some(limit) = q.limit {
        // One page; the header says where the next one starts.
        let more = first.len() as i64 > limit;
        first.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut response = (content_type, ndjson(&first)).into_response();
        if more && let Some((seq, _)) = first.last() {
            response
                .headers_mut()
                .insert(NEXT_AFTER_HEADER, HeaderValue::from(*seq));
        }
        return Ok(response);
    }
    // The whole journal, streamed a page at a time: memory holds a few pages, whatever
    // the journal's length.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, StoreError>>(2);
    tokio::spawn(async move {
        let mut page = first;
        loop {
            let full = page.len() as i64 == JOURNAL_STREAM_PAGE;
            let last = page.last().map(|(seq, _)| *seq);
            if !page.is_empty() && tx.send(Ok(ndjson(&page))).await.is_err() {
                return; // the client went away
            }
            let (true, Some(last)) = (full, last) else {
                return;
            };
            page = match store.journal_page(&id, last, JOURNAL_STREAM_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, %id, "journal stream failed");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
        }
    });
    let body = axum::body::Body::from_stream(Pages(rx));
    Ok((content_type, body).into_response())
}

/// The journal pages a streaming task sends.
struct Pages(tokio::sync::mpsc::Receiver<Result<String, StoreError>>);

impl futures_core::Stream for Pages {
    type Item = Result<String, StoreError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

pub async fn operate<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value = json_body(&body)?;
        let map = object(&value, &["reason"])?;
        match map.get("reason") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(r)) if r.len() <= 1024 => {
                ApiError::check_printable("reason", r)?;
                Some(r.clone())
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "reason",
                    "reason must be a string of at most 1024 bytes",
                ));
            }
        }
    };
    let request = match action.as_str() {
        "promote" => OperatorRequest::Promote,
        "abort" => OperatorRequest::Abort { reason },
        "pause" => OperatorRequest::Pause,
        "resume" => OperatorRequest::Resume,
        other => {
            return Err(ApiError::not_found(format!(
                "no action {other:?} (promote, abort, pause, resume)"
            )));
        }
    };
    if reason_given_to_other(&request, &body) {
        return Err(ApiError::invalid("reason", "only abort takes a reason"));
    }
    match s.runner.operate(&id, request).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "deployment": id, "accepted": action })),
        )
            .into_response()),
        Err(OperateError::NotFound(_)) => Err(ApiError::not_found(format!("no deployment {id}"))),
        Err(OperateError::Refused(r)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "refused",
            r.to_string(),
        )),
        Err(e @ OperateError::Unavailable(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
        Err(OperateError::Store(e)) => Err(ApiError::store(e)),
    }
}

fn reason_given_to_other(request: &OperatorRequest, body: &[u8]) -> bool {
    !matches!(request, OperatorRequest::Abort { .. })
        && !body.iter().all(u8::is_ascii_whitespace)
        && {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("reason").cloned())
                .is_some_and(|r| !r.is_null())
        }
}
