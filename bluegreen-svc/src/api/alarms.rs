//! `POST /v1/webhooks/cloudwatch`: EventBridge's "CloudWatch Alarm State Change" event,
//! exactly as an API destination delivers it (DESIGN §5). An `ALARM` for an alarm that
//! running deployments watch rolls them back now — each deployment's machine gets the
//! event as an input and its rollback's first write goes out in the same turn — instead
//! of at their next poll. Polling stays the fallback for an event that is late or lost.
//!
//! | event | answer |
//! |---|---|
//! | `ALARM`, and at least one deployment's rollback started | 202 `{"deployments": [ids], "ignored_by": [...]}` |
//! | anything else: `OK`, unknown alarm, a repeat, a phase that does not watch, stale, another account | 200 `{"ignored": reason}` |
//! | a watching deployment that no replica drives right now | 503 (EventBridge retries; a repeat is harmless) |
//! | a malformed event | 422 naming the field |
//!
//! Pinned like pushes: the event's `account` and `region` must be those of the app's own
//! listener, so an alarm of the same name in another account never rolls anything back.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bluegreen_core::command::AlarmState;
use bluegreen_core::{AlarmEvent, Cloud};
use serde_json::{Value, json};

use super::webhook::parse_rfc3339;
use super::{ApiError, ApiState, json_body};
use crate::runner::OperateError;
use crate::telemetry;

/// An alarm event as read from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmChange {
    pub account: String,
    pub region: String,
    pub event: AlarmEvent,
}

/// What the body is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Change(AlarmChange),
    /// Not a CloudWatch alarm state change: why.
    Other(String),
}

/// Bounds on what the event carries (AWS's own limits: names of 255 characters, reasons
/// of 1,023).
const NAME_BYTES_MAX: usize = 255;
const REASON_BYTES_MAX: usize = 1023;

/// A required non-empty, printable string (the push webhook's rule) of at most `max` bytes.
fn string<'a>(v: &'a Value, path: &str, key: &str, max: usize) -> Result<&'a str, ApiError> {
    let s = super::webhook::text(v, path, key)?;
    if s.len() > max {
        return Err(ApiError::invalid(
            path,
            format!("{path} is longer than {max} bytes"),
        ));
    }
    Ok(s)
}

/// Read the event. Bad shapes are 422 naming the field.
pub fn parse(value: &Value) -> Result<Parsed, ApiError> {
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
    if detail_type != "CloudWatch Alarm State Change" || source != "aws.cloudwatch" {
        return Ok(Parsed::Other(format!(
            "not a CloudWatch alarm state change (detail-type {detail_type:?}, source {source:?})"
        )));
    }
    let detail = match value.get("detail") {
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(ApiError::invalid("detail", "detail must be an object")),
        None => return Err(ApiError::invalid("detail", "detail is missing")),
    };
    let name = string(detail, "detail.alarmName", "alarmName", NAME_BYTES_MAX)?;
    let state = match detail.get("state") {
        Some(s @ Value::Object(_)) => s,
        Some(_) => {
            return Err(ApiError::invalid(
                "detail.state",
                "detail.state must be an object",
            ));
        }
        None => return Err(ApiError::invalid("detail.state", "detail.state is missing")),
    };
    let value_text = string(state, "detail.state.value", "value", 32)?;
    let state_value = match value_text {
        "ALARM" => AlarmState::Alarm,
        "OK" => AlarmState::Ok,
        "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
        other => {
            return Err(ApiError::invalid(
                "detail.state.value",
                format!("detail.state.value {other:?} is not OK, ALARM or INSUFFICIENT_DATA"),
            ));
        }
    };
    let reason = match state.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) => {
            let mut end = r.len().min(REASON_BYTES_MAX);
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            let r = &r[..end];
            ApiError::check_printable("detail.state.reason", r)?;
            r.to_string()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "detail.state.reason",
                "detail.state.reason must be a string",
            ));
        }
    };
    let account = string(value, "account", "account", 12)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "account",
            "account must be a 12-digit AWS account id",
        ));
    }
    let region = string(value, "region", "region", 32)?;
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::invalid(
            "region",
            "region must be an AWS region such as us-east-1",
        ));
    }
    let time = string(value, "time", "time", 40)?;
    let at = parse_rfc3339(time).ok_or_else(|| {
        ApiError::invalid(
            "time",
            "time must be an RFC 3339 timestamp such as 2026-11-22T03:04:05Z",
        )
    })?;
    Ok(Parsed::Change(AlarmChange {
        account: account.to_string(),
        region: region.to_string(),
        event: AlarmEvent {
            name: name.to_string(),
            state: state_value,
            reason,
            at,
        },
    }))
}

fn ignored(label: &'static str, reason: String) -> Response {
    telemetry::alarm_event(label);
    tracing::info!(outcome = label, detail = %reason, "alarm event ignored");
    (StatusCode::OK, Json(json!({ "ignored": reason }))).into_response()
}

pub async fn cloudwatch<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.authorize_webhook(&headers)
        .inspect_err(|_| telemetry::alarm_event("rejected"))?;
    let value = json_body(&body).inspect_err(|_| telemetry::alarm_event("rejected"))?;
    let change = match parse(&value).inspect_err(|_| telemetry::alarm_event("rejected"))? {
        Parsed::Other(why) => return Ok(ignored("not-alarm", why)),
        Parsed::Change(c) => c,
    };
    let name = change.event.name.clone();
    // Apps that list the alarm, and of those the ones in the event's account and region.
    let listing: Vec<&crate::config::AppConfig> = s
        .apps
        .iter()
        .filter(|a| a.draft.alarms.iter().any(|x| *x == name))
        .collect();
    if listing.is_empty() {
        return Ok(ignored(
            "unwatched",
            format!("no app watches alarm {name:?}"),
        ));
    }
    let pinned: Vec<String> = listing
        .iter()
        .filter(|a| {
            bluegreen_core::arn::Arn::parse(&a.draft.listener.listener_arn)
                .is_ok_and(|arn| arn.account == change.account && arn.region == change.region)
        })
        .map(|a| a.name.clone())
        .collect();
    if pinned.is_empty() {
        return Ok(ignored(
            "foreign-account",
            format!(
                "alarm {name:?} of account {} region {} is not the alarm of any app's own account and region",
                change.account, change.region
            ),
        ));
    }
    let deliveries = s
        .runner
        .alarm(change.event, |app| pinned.iter().any(|p| p == app))
        .await
        .map_err(ApiError::store)?;
    let mut rolled_back = Vec::new();
    let mut not = Vec::new();
    let mut unavailable = Vec::new();
    for d in deliveries {
        match d.outcome {
            Ok(()) => rolled_back.push(d.deployment),
            Err(OperateError::Refused(r)) => {
                not.push(json!({ "deployment": d.deployment, "ignored": r.reason }))
            }
            Err(OperateError::Unavailable(_)) => unavailable.push(d.deployment),
            Err(OperateError::Store(e)) => return Err(ApiError::store(e)),
            Err(other) => return Err(ApiError::internal(other)),
        }
    }
    if !rolled_back.is_empty() {
        telemetry::alarm_event("rolled-back");
        tracing::warn!(alarm = %name, deployments = ?rolled_back, "alarm event: rolling back");
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "deployments": rolled_back, "ignored_by": not, "unavailable": unavailable })),
        )
            .into_response());
    }
    if !unavailable.is_empty() {
        // Nobody drives these right now (a takeover in progress): ask EventBridge to
        // deliver again; the deployments that answered take a repeat as a no-op.
        telemetry::alarm_event("unavailable");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "deployments {} that watch alarm {name:?} are not driven right now; retry",
                unavailable.join(", ")
            ),
        ));
    }
    if not.is_empty() {
        return Ok(ignored(
            "no-running",
            format!("no running deployment watches alarm {name:?}"),
        ));
    }
    let reason = not
        .iter()
        .filter_map(|n| {
            Some(format!(
                "{}: {}",
                n["deployment"].as_str()?,
                n["ignored"].as_str()?
            ))
        })
        .collect::<Vec<_>>()
        .join("; ");
    telemetry::alarm_event("ignored");
    tracing::info!(alarm = %name, detail = %reason, "alarm event ignored by every deployment");
    Ok((
        StatusCode::OK,
        Json(json!({ "ignored": reason, "ignored_by": not })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: &str) -> Value {
        json!({
            "version": "0", "id": "e1",
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": "123456789012", "region": "us-east-1",
            "time": "2026-11-22T12:00:00Z",
            "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx"],
            "detail": {
                "alarmName": "web-5xx",
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-22T12:00:00.000+0000"},
                "previousState": {"value": "OK"}
            }
        })
    }

    #[test]
    fn an_alarm_state_change_is_read_with_its_time_and_reason() {
        let Parsed::Change(c) = parse(&event("ALARM")).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            (c.account.as_str(), c.region.as_str()),
            ("123456789012", "us-east-1")
        );
        assert_eq!(c.event.name, "web-5xx");
        assert_eq!(c.event.state, AlarmState::Alarm);
        assert_eq!(c.event.reason, "Threshold Crossed");
        assert_eq!(c.event.at, parse_rfc3339("2026-11-22T12:00:00Z").unwrap());
        let Parsed::Change(ok) = parse(&event("OK")).unwrap() else {
            panic!("a change")
        };
        assert_eq!(ok.event.state, AlarmState::Ok);
    }

    #[test]
    fn other_events_are_not_alarm_changes() {
        let mut e = event("ALARM");
        e["detail-type"] = json!("ECR Image Action");
        assert!(matches!(parse(&e).unwrap(), Parsed::Other(_)));
    }

    #[test]
    fn bad_fields_are_named() {
        for (path, edit) in [
            ("detail.alarmName", json!({"state": {"value": "ALARM"}})),
            ("detail.state", json!({"alarmName": "web-5xx"})),
            (
                "detail.state.value",
                json!({"alarmName": "web-5xx", "state": {"value": "RED"}}),
            ),
            (
                "detail.alarmName",
                json!({"alarmName": "x".repeat(300), "state": {"value": "ALARM"}}),
            ),
            (
                "detail.alarmName",
                json!({"alarmName": "web\u{7}", "state": {"value": "ALARM"}}),
            ),
        ] {
            let mut e = event("ALARM");
            e["detail"] = edit;
            let err = parse(&e).unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some(path), "{err:?}");
        }
        for (key, bad) in [
            ("account", "12"),
            ("region", "US_EAST"),
            ("time", "yesterday"),
        ] {
            let mut e = event("ALARM");
            e[key] = json!(bad);
            assert_eq!(parse(&e).unwrap_err().body.field.as_deref(), Some(key));
        }
    }

    #[test]
    fn a_huge_reason_is_cut_to_cloudwatchs_own_bound() {
        let mut e = event("ALARM");
        e["detail"]["state"]["reason"] = json!("é".repeat(2000));
        let Parsed::Change(c) = parse(&e).unwrap() else {
            panic!("a change")
        };
        assert!(c.event.reason.len() <= REASON_BYTES_MAX);
    }
}
