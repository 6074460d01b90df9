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
use bluegreen_core::{Cloud, Timestamp};
use serde_json::{Value, json};

use super::{ApiError, ApiState, json_body};
use crate::runner::{Source, Submit, SubmitError, Submitted};
use crate::telemetry;

/// A successful push, as read from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub account: String,
    pub region: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    /// The event's `time` (when ECR saw the push; EventBridge may deliver it hours later).
    pub time: Timestamp,
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

/// Why an event was ignored: the label of `bluegreen_webhook_ignored_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Another detail-type or source.
    NotEcr,
    /// An action other than PUSH.
    NotPush,
    /// A result other than SUCCESS.
    NotSuccess,
    /// No app watches that repository and tag.
    Unwatched,
    /// Watched, but pushed to another account's or region's registry.
    ForeignRegistry,
}

impl IgnoreReason {
    pub fn label(self) -> &'static str {
        match self {
            IgnoreReason::NotEcr => "not-ecr",
            IgnoreReason::NotPush => "not-push",
            IgnoreReason::NotSuccess => "not-success",
            IgnoreReason::Unwatched => "unwatched",
            IgnoreReason::ForeignRegistry => "foreign-registry",
        }
    }
}

/// What the event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push(Push),
    Ignored(IgnoreReason, String),
}

/// A required non-empty string, printable (a control character is refused).
pub(super) fn text<'a>(v: &'a Value, path: &str, field: &str) -> Result<&'a str, ApiError> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => {
            ApiError::check_printable(path, s)?;
            Ok(s)
        }
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
        return Ok(Event::Ignored(
            IgnoreReason::NotEcr,
            format!("not an ECR image action (detail-type {detail_type:?}, source {source:?})"),
        ));
    }
    let detail = match value.get("detail") {
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(ApiError::invalid("detail", "detail must be an object")),
        None => return Err(ApiError::invalid("detail", "detail is missing")),
    };
    let action = text(detail, "detail.action-type", "action-type")?;
    if action != "PUSH" {
        return Ok(Event::Ignored(
            IgnoreReason::NotPush,
            format!("action-type {action} is not a push"),
        ));
    }
    let result = text(detail, "detail.result", "result")?;
    if result != "SUCCESS" {
        return Ok(Event::Ignored(
            IgnoreReason::NotSuccess,
            format!("the push did not succeed (result {result})"),
        ));
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
        Some(Value::String(t)) => {
            ApiError::check_printable("detail.image-tag", t)?;
            Some(t.clone())
        }
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
    let time = text(value, "time", "time")?;
    let time = parse_rfc3339(time).ok_or_else(|| {
        ApiError::invalid(
            "time",
            "time must be an RFC 3339 timestamp such as 2026-11-22T03:04:05Z",
        )
    })?;
    Ok(Event::Push(Push {
        account: account.to_string(),
        region: region.to_string(),
        repository,
        digest,
        tag,
        time,
    }))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → a [`Timestamp`] (milliseconds, UTC);
/// `None` for anything else, or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 40 || !text.is_ascii() {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = &text[from..to];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let sep = |at: usize, c: &[u8]| c.contains(&b[at]);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut scaled = frac[..digits.min(3)].to_string();
        while scaled.len() < 3 {
            scaled.push('0');
        }
        ms = scaled.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let digits = |p: &str| -> Option<i64> {
                p.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| p.parse().ok())
                    .flatten()
            };
            let (oh, om) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
            if &rest[3..4] != ":" || oh > 23 || om > 59 {
                return None;
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s.min(59) - offset_min * 60;
    let total = secs.checked_mul(1000)?.checked_add(ms)?;
    u64::try_from(total).ok().map(Timestamp::from_millis)
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn ignored(why: IgnoreReason, reason: String) -> Response {
    telemetry::webhook("ignored");
    telemetry::webhook_ignored(why.label());
    tracing::info!(reason = why.label(), detail = %reason, "webhook event ignored");
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
        Event::Ignored(why, reason) => return Ok(ignored(why, reason)),
        Event::Push(p) => p,
    };
    let watching: Vec<&crate::config::AppConfig> = s
        .apps
        .iter()
        .filter(|a| a.watches(&push.repository, push.tag.as_deref()))
        .collect();
    if watching.is_empty() {
        return Ok(ignored(
            IgnoreReason::Unwatched,
            not_watched(&s.apps, &push.repository, push.tag.as_deref()),
        ));
    }
    // Pinned registry: a repository name is not an identity — anyone can create `web` in
    // their own account. Only the app's own registry deploys it.
    let (watchers, foreign): (Vec<_>, Vec<_>) = watching.into_iter().partition(|a| {
        a.registry
            .as_ref()
            .is_some_and(|r| r.admits(&push.account, &push.region))
    });
    let watchers: Vec<&str> = watchers.iter().map(|a| a.name.as_str()).collect();
    if watchers.is_empty() {
        let pinned: Vec<String> = foreign
            .iter()
            .map(|a| match &a.registry {
                Some(r) => format!("{} pins {r}", a.name),
                None => format!("{} has no registry", a.name),
            })
            .collect();
        return Ok(ignored(
            IgnoreReason::ForeignRegistry,
            format!(
                "foreign registry: the push came from account {} region {}; {}",
                push.account,
                push.region,
                pinned.join("; ")
            ),
        ));
    }
    let image = push.image();
    let mut outcomes = Vec::new();
    let mut ignored_apps = Vec::new();
    let mut created = false;
    for app in watchers {
        let submitted = s
            .runner
            .submit(Submit {
                app: app.to_string(),
                image: image.clone(),
                // The event's own time orders pushes (EventBridge delivers late).
                source: Source::Webhook {
                    event_time: Some(push.time),
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
                SubmitError::Store(e) => ApiError::store(e),
                other => ApiError::internal(other),
            })?;
        let (state, label, id) = match &submitted {
            Submitted::Created { queued: false, id } => ("started", "deployed", id),
            Submitted::Created { queued: true, id } => ("queued", "queued", id),
            Submitted::Existing { id } => ("repeat", "repeat", id),
            // The app's admission ignored it: stale (an older push than one accepted)
            // or held (a deployment of the app failed).
            Submitted::Ignored(why) => {
                telemetry::webhook("ignored");
                telemetry::webhook_ignored(why.label());
                tracing::info!(%app, %image, reason = %why, "webhook push ignored");
                ignored_apps.push(json!({ "app": app, "ignored": why.to_string() }));
                continue;
            }
        };
        created |= matches!(submitted, Submitted::Created { .. });
        telemetry::webhook(label);
        tracing::info!(%app, %id, %state, %image, "webhook push");
        outcomes.push(json!({ "app": app, "deployment": id.as_str(), "state": state }));
    }
    if outcomes.is_empty() {
        // Every watching app ignored it: 200 with the reasons, one per app.
        let reason = ignored_apps
            .iter()
            .filter_map(|r| r["ignored"].as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Ok((
            StatusCode::OK,
            Json(json!({ "ignored": reason, "apps": ignored_apps })),
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
            matches!(parse(&event("DELETE", "SUCCESS")).unwrap(), Event::Ignored(IgnoreReason::NotPush, r) if r.contains("DELETE"))
        );
        assert!(
            matches!(parse(&event("PUSH", "FAILURE")).unwrap(), Event::Ignored(IgnoreReason::NotSuccess, r) if r.contains("FAILURE"))
        );
        let mut other = event("PUSH", "SUCCESS");
        other["detail-type"] = json!("EC2 Instance State-change Notification");
        assert!(matches!(
            parse(&other).unwrap(),
            Event::Ignored(IgnoreReason::NotEcr, _)
        ));
    }

    #[test]
    fn event_times_are_read_as_rfc3339() {
        let t = |s: &str| parse_rfc3339(s).map(|t| t.as_millis());
        assert_eq!(t("2026-11-22T03:04:05Z"), Some(1_795_316_645_000));
        assert_eq!(t("2026-11-22T03:04:05.678Z"), Some(1_795_316_645_678));
        assert_eq!(t("2026-11-22T04:04:05+01:00"), Some(1_795_316_645_000));
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T03:04:05",
            "2026-11-22T03:04:05+1:00",
            "1969-12-31T23:59:59Z",
            "2026-11-22T03:04:05.Z",
            "２026-11-22T03:04:05Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn control_characters_in_the_event_are_refused_naming_the_field() {
        let mut e = event("PUSH", "SUCCESS");
        e["detail"]["image-tag"] = json!("v2\u{1b}[2J");
        assert_eq!(
            parse(&e).unwrap_err().body.field.as_deref(),
            Some("detail.image-tag")
        );
        let mut e = event("PUSH", "SUCCESS");
        e["detail"]["repository-name"] = json!("web\n");
        assert_eq!(
            parse(&e).unwrap_err().body.field.as_deref(),
            Some("detail.repository-name")
        );
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
