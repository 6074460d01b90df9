//! A CloudWatch bridge for the emulator: speaks Smithy RPC v2 CBOR (what
//! aws-sdk-cloudwatch ≥ 1.100 sends) on one side and the Query protocol (what moto
//! accepts; getmoto/moto#9195) on the other.
//!
//! Test-only, and only `DescribeAlarms`: it lets the product's own `DescribeAlarms`
//! request and response code run over the wire against alarm state that moto holds
//! (set with moto's `SetAlarmState`), so an alarm-triggered rollback goes through the
//! real adapter. Other operations answer `UnknownOperationException`; `GetMetricData` is
//! proven by the mapping tests instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ciborium::Value;

use super::query::{Query, xml_block, xml_members, xml_value};

/// A running bridge; the server task stops when this is dropped.
pub struct CborBridge {
    pub endpoint: String,
    /// DescribeAlarms calls bridged so far.
    pub calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CborBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Bridge {
    moto: Query,
    calls: Arc<AtomicU64>,
}

impl CborBridge {
    pub async fn start(moto_endpoint: &str) -> CborBridge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bridge");
        let addr: SocketAddr = listener.local_addr().expect("bridge address");
        let calls = Arc::new(AtomicU64::new(0));
        let state = Bridge {
            moto: Query::new(moto_endpoint),
            calls: calls.clone(),
        };
        let app = Router::new()
            .route(
                "/service/{service}/operation/{operation}",
                axum::routing::post(operation),
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CborBridge {
            endpoint: format!("http://{addr}"),
            calls,
            task,
        }
    }
}

fn cbor(status: StatusCode, value: Value) -> Response {
    let mut body = Vec::new();
    ciborium::into_writer(&value, &mut body).expect("encode CBOR");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/cbor"));
    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    (status, headers, body).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    cbor(
        status,
        Value::Map(vec![
            (Value::Text("__type".into()), Value::Text(code.into())),
            (Value::Text("message".into()), Value::Text(message.into())),
        ]),
    )
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn field<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

async fn operation(
    State(bridge): State<Bridge>,
    Path((_service, operation)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if operation != "DescribeAlarms" {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the test bridge only speaks DescribeAlarms, not {operation}"),
        );
    }
    bridge.calls.fetch_add(1, Ordering::Relaxed);
    let request: Value = match ciborium::from_reader(body.as_ref()) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            );
        }
    };
    let names: Vec<String> = match field(&request, "AlarmNames") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let params: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("AlarmNames.member.{}", i + 1), n.clone()))
        .collect();
    let xml = match bridge
        .moto
        .try_call("monitoring", "2010-08-01", "DescribeAlarms", &params)
        .await
    {
        Ok(xml) => xml,
        Err((status, body)) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                "InternalFailure",
                &body,
            );
        }
    };
    let alarms = |list: &str| -> Value {
        let members = xml_block(&xml, list).map(xml_members).unwrap_or_default();
        Value::Array(
            members
                .into_iter()
                .map(|m| {
                    let mut entries = Vec::new();
                    for key in ["AlarmName", "AlarmArn", "StateValue", "StateReason"] {
                        if let Some(v) = xml_value(m, key) {
                            entries.push((text(key), text(v)));
                        }
                    }
                    Value::Map(entries)
                })
                .collect(),
        )
    };
    cbor(
        StatusCode::OK,
        Value::Map(vec![
            (text("MetricAlarms"), alarms("MetricAlarms")),
            (text("CompositeAlarms"), alarms("CompositeAlarms")),
        ]),
    )
}
