//! `POST /v1/webhooks/ecr`: the ECR push event exactly as an EventBridge API destination
//! delivers it.
//!
//! Anything that is not a successful push, or that no app watches, is acknowledged with
//! 200 `{"ignored": reason}` so EventBridge does not retry it. A push some apps watch
//! starts (or queues) one deployment per app: 202 `{"deployment": id, …}`. A repeat of a
//! push already seen for the app (same digest) answers 200 with the existing id.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bluegreen_core::Cloud;
use serde_json::{Value, json};

use super::{ApiError, ApiState, json_body};
use crate::runner::{Source, Submit, SubmitError, Submitted};
use crate::telemetry;

/// A successful push, as read from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub account: String,
    pub region: String,
    /// The event's time (orders pushes of one app).
    pub time: Option<bluegreen_core::Timestamp>,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
}

impl Push {
    /// The pushed image, by digest: `<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:…`.
    pub fn image(&self) -> String {
        format!(
            "{}.dkr.ecr.{}.amazonaws.com/{}@{}",
            self.account, self.region, self.repository, self.digest
        )
    }
}

/// What the event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push(Push),
    Ignored(String),
}

fn text<'a>(v: &'a Value, path: &str, field: &str) -> Result<&'a str, ApiError> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::invalid(
            path,
            format!("{path} must be a non-empty string"),
        )),
        None => Err(ApiError::invalid(path, format!("{path} is missing"))),
    }
}

/// Read an event (see the module docs). Bad shapes are 422 naming the field.
pub fn parse(value: &Value) -> Result<Event, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(
            "",
            "the body must be a JSON object (an EventBridge event)",
        ));
    }
    let detail_type = value
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let source = value.get("source").and_then(Value::as_str).unwrap_or("");
    if detail_type != "ECR Image Action" || source != "aws.ecr" {
        return Ok(Event::Ignored(format!(
            "not an ECR image action (detail-type {detail_type:?}, source {source:?})"
        )));
    }
    let detail = match value.get("detail") {
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(ApiError::invalid("detail", "detail must be an object")),
        None => return Err(ApiError::invalid("detail", "detail is missing")),
    };
    let action = text(detail, "detail.action-type", "action-type")?;
    if action != "PUSH" {
        return Ok(Event::Ignored(format!(
            "action-type {action} is not a push"
        )));
    }
    let result = text(detail, "detail.result", "result")?;
    if result != "SUCCESS" {
        return Ok(Event::Ignored(format!(
            "the push did not succeed (result {result})"
        )));
    }
    let repository = text(detail, "detail.repository-name", "repository-name")?.to_string();
    let digest = text(detail, "detail.image-digest", "image-digest")?.to_string();
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            "detail.image-digest",
            "image-digest must be sha256: followed by 64 hex characters",
        ));
    }
    let tag = match detail.get("image-tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "detail.image-tag",
                "detail.image-tag must be a string",
            ));
        }
    };
    let account = text(value, "account", "account")?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "account",
            "account must be a 12-digit AWS account id",
        ));
    }
    let region = text(value, "region", "region")?;
    if region.len() > 32
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::invalid(
            "region",
            "region must be an AWS region such as us-east-1",
        ));
    }
    let time = match value.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_event_time(t).ok_or_else(|| {
            ApiError::invalid(
                "time",
                "time must be an RFC 3339 UTC time such as 2026-11-22T03:04:05Z",
            )
        })?),
        Some(_) => return Err(ApiError::invalid("time", "time must be a string")),
    };
    Ok(Event::Push(Push {
        account: account.to_string(),
        region: region.to_string(),
        time,
        repository,
        digest,
        tag,
    }))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (EventBridge's event time) → a timestamp.
pub fn parse_event_time(text: &str) -> Option<bluegreen_core::Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 40 || !text.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac_ms = match &text[19..text.len() - 1] {
        "" => 0,
        f if f.len() >= 2 && f.starts_with('.') && f[1..].bytes().all(|c| c.is_ascii_digit()) => {
            let digits = &f[1..f.len().min(4)];
            let v: i64 = digits.parse().ok()?;
            v * 10_i64.pow(3 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + h * 3_600 + mi * 60 + sec) * 1_000) + frac_ms;
    u64::try_from(ms)
        .ok()
        .map(bluegreen_core::Timestamp::from_millis)
}

fn ignored(reason: String) -> Response {
    telemetry::webhook("ignored");
    tracing::info!(%reason, "webhook event ignored");
    (StatusCode::OK, Json(json!({ "ignored": reason }))).into_response()
}

/// Why no app takes a push: nobody watches the repository, or its apps' tag filters
/// did not match the tag (say which filters, so the fix is obvious).
fn not_watched(apps: &[crate::config::AppConfig], repository: &str, tag: Option<&str>) -> String {
    let filtered: Vec<String> = apps
        .iter()
        .filter(|a| a.repository.as_deref() == Some(repository))
        .map(|a| format!("{} (tags {:?})", a.name, a.tags))
        .collect();
    if filtered.is_empty() {
        return format!("no app watches repository {repository:?}");
    }
    match tag {
        Some(t) => format!(
            "tag {t:?} of repository {repository:?} matches no tag filter: {}",
            filtered.join(", ")
        ),
        None => format!(
            "the push of repository {repository:?} has no tag, and its apps deploy only tags matching their filters: {}",
            filtered.join(", ")
        ),
    }
}

pub async fn ecr<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.authorize_webhook(&headers)
        .inspect_err(|_| telemetry::webhook("rejected"))?;
    let value = json_body(&body).inspect_err(|_| telemetry::webhook("rejected"))?;
    let push = match parse(&value).inspect_err(|_| telemetry::webhook("rejected"))? {
        Event::Ignored(reason) => return Ok(ignored(reason)),
        Event::Push(p) => p,
    };
    let watchers: Vec<&str> = s
        .apps
        .iter()
        .filter(|a| a.watches(&push.repository, push.tag.as_deref()))
        .map(|a| a.name.as_str())
        .collect();
    if watchers.is_empty() {
        return Ok(ignored(not_watched(
            &s.apps,
            &push.repository,
            push.tag.as_deref(),
        )));
    }
    let image = push.image();
    let mut outcomes = Vec::new();
    let mut ignored_reasons = Vec::new();
    let mut created = false;
    for app in watchers {
        let submitted = s
            .runner
            .submit(Submit {
                app: app.to_string(),
                image: image.clone(),
                // The event's own time orders pushes (EventBridge delivers late).
                source: Source::Webhook {
                    event_time: push.time,
                },
            })
            .await
            .map_err(|e| match e {
                SubmitError::Invalid(spec) => {
                    ApiError::invalid("detail.image-digest", spec.to_string())
                }
                SubmitError::ShuttingDown | SubmitError::Full(_) => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                ),
                other => ApiError::internal(other),
            })?;
        let (state, label, id) = match &submitted {
            Submitted::Created { queued: false, id } => ("started", "deployed", id),
            Submitted::Created { queued: true, id } => ("queued", "queued", id),
            Submitted::Existing { id } => ("repeat", "repeat", id),
            Submitted::Ignored(why) => {
                telemetry::webhook("ignored");
                metrics::counter!("bluegreen_webhook_ignored_total", "reason" => why.label())
                    .increment(1);
                tracing::info!(%app, %image, reason = %why, "webhook push ignored");
                ignored_reasons.push(json!({ "app": app, "ignored": why.to_string() }));
                continue;
            }
        };
        created |= matches!(submitted, Submitted::Created { .. });
        telemetry::webhook(label);
        tracing::info!(%app, %id, %state, %image, "webhook push");
        outcomes.push(json!({ "app": app, "deployment": id.as_str(), "state": state }));
    }
    if outcomes.is_empty() {
        // Every watching app ignored it (stale, held): one reason per app.
        let reason = ignored_reasons
            .iter()
            .filter_map(|r| r["ignored"].as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Ok((
            StatusCode::OK,
            Json(json!({ "ignored": reason, "apps": ignored_reasons })),
        )
            .into_response());
    }
    let first = outcomes[0]["deployment"].clone();
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "deployment": first, "deployments": outcomes })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_as_utc_milliseconds() {
        let t = parse_event_time("2026-11-22T03:04:05Z").unwrap();
        assert_eq!(t.as_millis(), 1_795_316_645_000);
        assert_eq!(
            parse_event_time("2026-11-22T03:04:05.678Z")
                .unwrap()
                .as_millis(),
            1_795_316_645_678
        );
        assert_eq!(
            parse_event_time("1970-01-01T00:00:00Z")
                .unwrap()
                .as_millis(),
            0
        );
        for bad in [
            "2026-11-22 03:04:05Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T03:04:05",
            "yesterday",
            "2026-11-22T03:04:05.Z",
        ] {
            assert!(parse_event_time(bad).is_none(), "{bad}");
        }
    }

    fn event(action: &str, result: &str) -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-22T03:04:05Z", "region": "us-east-1", "resources": [],
            "detail": { "action-type": action, "result": result, "repository-name": "web",
                        "image-digest": format!("sha256:{}", "ab".repeat(32)), "image-tag": "v2" }
        })
    }

    #[test]
    fn a_successful_push_is_read_with_its_image_by_digest() {
        let Event::Push(p) = parse(&event("PUSH", "SUCCESS")).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.tag.as_deref(), Some("v2"));
        assert_eq!(
            p.image(),
            format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:{}",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn deletes_and_failures_are_ignored_with_a_reason() {
        assert!(
            matches!(parse(&event("DELETE", "SUCCESS")).unwrap(), Event::Ignored(r) if r.contains("DELETE"))
        );
        assert!(
            matches!(parse(&event("PUSH", "FAILURE")).unwrap(), Event::Ignored(r) if r.contains("FAILURE"))
        );
        let mut other = event("PUSH", "SUCCESS");
        other["detail-type"] = json!("EC2 Instance State-change Notification");
        assert!(matches!(parse(&other).unwrap(), Event::Ignored(_)));
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let mut e = event("PUSH", "SUCCESS");
        e["detail"]
            .as_object_mut()
            .unwrap()
            .remove("repository-name");
        assert_eq!(
            parse(&e).unwrap_err().body.field.as_deref(),
            Some("detail.repository-name")
        );
        let mut e = event("PUSH", "SUCCESS");
        e["detail"]["image-digest"] = json!("sha256:xyz");
        assert_eq!(
            parse(&e).unwrap_err().body.field.as_deref(),
            Some("detail.image-digest")
        );
        let mut e = event("PUSH", "SUCCESS");
        e["account"] = json!(12);
        assert_eq!(
            parse(&e).unwrap_err().body.field.as_deref(),
            Some("account")
        );
    }
}
