//! Structured fuzzing of every edge that parses outside input (issue 10, item 7):
//! the webhook event parser, the API's request bodies and query strings through the real
//! axum router, the config loader (file and environment), and `SpecDraft` validation
//! (with the plan of every draft that validates).
//!
//! cargo-fuzz needs a nightly toolchain, so this is proptest-driven: each target starts
//! from valid inputs and applies random structural mutations (replace, remove, insert a
//! leaf; hostile strings with control characters, huge numbers, wrong types). A panic
//! or a 5xx answer fails the test; proptest shrinks it and records its seed in
//! `tests/fuzz-regressions/<target>.txt`, replayed first on every later run. Inputs that
//! once failed are also kept below as named regression cases.
//!
//! Bounds: `BLUEGREEN_FUZZ_CASES` cases per target (default 256) and
//! `BLUEGREEN_FUZZ_SECONDS` per target (default 20; cases past it are skipped).
//! `.ci/run` sets both.

mod svc_util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use bluegreen_core::{DeploymentId, DeploymentSpec, Plan, SpecDraft};
use bluegreen_svc::api::{self, ApiState, webhook};
use bluegreen_svc::cloud::dev::DevCloud;
use bluegreen_svc::config::{Config, EXAMPLE_TOML, Origin};
use bluegreen_svc::runner::Runner;
use bluegreen_svc::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};
use svc_util::{API_TOKEN, TempDir, WEBHOOK_TOKEN, app_toml, digest, push_event};
use tower::ServiceExt;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `check` over `strategy` within the case and time budget, persisting failures.
fn fuzz<S: Strategy>(
    target: &'static str,
    persistence: &'static str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let cases = env_u64("BLUEGREEN_FUZZ_CASES", 256) as u32;
    let budget = Duration::from_secs(env_u64("BLUEGREEN_FUZZ_SECONDS", 20));
    let config = PtConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence))),
        max_shrink_time: 30_000,
        ..PtConfig::default()
    };
    let start = Instant::now();
    let ran = std::sync::atomic::AtomicU32::new(0);
    let result = TestRunner::new(config).run(&strategy, |v| {
        if start.elapsed() > budget {
            return Ok(());
        }
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        check(v)
    });
    if let Err(e) = result {
        panic!("fuzz target {target} failed: {e}");
    }
    let ran = ran.into_inner();
    eprintln!("fuzz {target}: {ran} cases in {:?}", start.elapsed());
    assert!(ran > 0, "fuzz target {target} ran no case");
}

// ---- mutation of structured inputs -------------------------------------------------

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{1b}[2J\u{7}".to_string()),
        Just("\0".to_string()),
        Just("sha256:".to_string() + &"ab".repeat(32)),
        Just("99999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("v*".to_string()),
        Just("2026-11-22T03:04:05Z".to_string()),
        Just("9999-12-31T23:59:60.999999999+23:59".to_string()),
        Just("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/x".to_string()),
        Just("a".repeat(70_000)),
        "\\PC{0,40}",
        ".{0,40}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::MAX),
            Just(u32::MAX as u64 + 1)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z-]{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One mutation: `(which node, what to do, the new value)`.
type Mutation = (usize, u8, Value);

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec((any::<usize>(), 0u8..4, any_json()), 0..6)
}

/// Every node's path (object keys and array indices).
fn paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Value::from(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Value::from(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        Value::String(k) => v.get_mut(k.as_str()),
        Value::Number(i) => v.get_mut(i.as_u64()? as usize),
        _ => None,
    })
}

fn mutate(mut v: Value, muts: &[Mutation]) -> Value {
    for (which, action, new) in muts {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let path = &all[which % all.len()];
        match (*action, path.split_last()) {
            (0, _) | (_, None) => {
                if let Some(n) = node(&mut v, path) {
                    *n = new.clone();
                }
            }
            (1, Some((last, parent))) => {
                if let Some(p) = node(&mut v, parent) {
                    match (p, last) {
                        (Value::Object(m), Value::String(k)) => {
                            m.remove(k);
                        }
                        (Value::Array(a), Value::Number(i)) => {
                            let i = i.as_u64().unwrap_or(0) as usize;
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            (_, Some(_)) => {
                if let Some(n) = node(&mut v, path) {
                    match n {
                        Value::Object(m) => {
                            m.insert(format!("k{which}"), new.clone());
                        }
                        Value::Array(a) => a.push(new.clone()),
                        other => *other = new.clone(),
                    }
                }
            }
        }
    }
    v
}

// ---- the webhook event parser ------------------------------------------------------

/// Events kept as regression cases (a known-good shape at the edge of the parser).
const EVENT_REGRESSIONS: &[&str] = &[r#"{"detail-type": "ECR Image Action", "source": "aws.ecr"}"#];

fn a_push() -> Value {
    serde_json::from_str(&push_event("web", Some("v2"), &digest(9))).unwrap()
}

fn check_event(v: &Value) -> Result<(), TestCaseError> {
    if let Err(e) = webhook::parse(v) {
        prop_assert!(e.status.is_client_error(), "{v}: {e:?}");
        prop_assert!(
            e.body.field.is_some() || e.body.code == "invalid_field",
            "{e:?}"
        );
    }
    Ok(())
}

#[test]
fn fuzz_the_webhook_event_parser() {
    for regression in EVENT_REGRESSIONS {
        check_event(&serde_json::from_str(regression).unwrap()).unwrap();
    }
    let base = a_push();
    fuzz(
        "webhook-parser",
        "tests/fuzz-regressions/webhook-parser.txt",
        prop_oneof![
            mutations().prop_map(move |m| mutate(base.clone(), &m)),
            any_json(),
        ],
        |v| check_event(&v),
    );
    fuzz(
        "event-time",
        "tests/fuzz-regressions/event-time.txt",
        prop_oneof![
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
            hostile_string(),
        ],
        |s| {
            if let Some(t) = webhook::parse_rfc3339(&s) {
                prop_assert!(t.as_millis() < 253_402_387_200_000, "{s} → {t:?}");
            }
            Ok(())
        },
    );
}

// ---- SpecDraft validation ----------------------------------------------------------

fn example_draft() -> Value {
    let config = Config::parse(EXAMPLE_TOML, Origin::BuiltIn, &BTreeMap::new()).unwrap();
    serde_json::to_value(&config.seed_drafts()[0]).unwrap()
}

fn check_draft(v: Value) -> Result<(), TestCaseError> {
    let Ok(draft) = serde_json::from_value::<SpecDraft>(v) else {
        return Ok(());
    };
    if let Err(e) = draft.validate() {
        prop_assert!(!e.field.is_empty(), "an error names its field: {e:?}");
        return Ok(());
    }
    let spec = DeploymentSpec::new(draft).expect("validate() passed");
    let plan = Plan::for_deployment(&DeploymentId::new("fuzz-1").unwrap(), &spec);
    let _ = plan.to_string();
    Ok(())
}

#[test]
fn fuzz_spec_draft_validation() {
    let base = example_draft();
    check_draft(base.clone()).unwrap();
    fuzz(
        "spec-draft",
        "tests/fuzz-regressions/spec-draft.txt",
        mutations().prop_map(move |m| mutate(base.clone(), &m)),
        check_draft,
    );
}

// ---- the config loader -------------------------------------------------------------

/// Config texts this target found failing, kept as regression cases: an empty key was
/// reported with no key at all.
const CONFIG_REGRESSIONS: &[&str] = &["\"\" = \"null\"\n"];

fn denull(v: &mut Value) {
    match v {
        Value::Null => *v = Value::from("null"),
        Value::Array(a) => a.iter_mut().for_each(denull),
        Value::Object(m) => m.values_mut().for_each(denull),
        _ => {}
    }
}

fn check_config(text: &str, env: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    if let Err(e) = Config::parse(text, Origin::BuiltIn, env) {
        prop_assert!(!e.key.is_empty() && !e.message.is_empty(), "{e:?}");
    }
    Ok(())
}

#[test]
fn fuzz_the_config_loader() {
    for text in CONFIG_REGRESSIONS {
        check_config(text, &BTreeMap::new()).unwrap();
    }
    let base: Value = toml::from_str(EXAMPLE_TOML).unwrap();
    let lines: Vec<String> = EXAMPLE_TOML.lines().map(str::to_string).collect();
    let example = EXAMPLE_TOML.to_string();
    let structured = mutations().prop_map(move |m| {
        // TOML has no null: a null becomes a string; what still cannot be TOML (a
        // scalar at the top) leaves the example as it is.
        let mut v = mutate(base.clone(), &m);
        denull(&mut v);
        toml::to_string(&v).unwrap_or_else(|_| example.clone())
    });
    let textual = prop::collection::vec((any::<usize>(), 0u8..3, hostile_string()), 0..6).prop_map(
        move |edits| {
            let mut lines = lines.clone();
            for (at, action, text) in edits {
                let i = at % (lines.len() + 1);
                match action {
                    0 if i < lines.len() => {
                        lines.remove(i);
                    }
                    1 => lines.insert(i, text),
                    _ if i < lines.len() => {
                        let key = lines[i].split('=').next().unwrap_or("").to_string();
                        lines[i] = format!("{key}= {text}");
                    }
                    _ => {}
                }
            }
            lines.join("\n")
        },
    );
    let keys = prop_oneof![
        Just("BLUEGREEN_SERVER_LISTEN"),
        Just("BLUEGREEN_SERVER_RETENTION"),
        Just("BLUEGREEN_SERVER_API_RATE"),
        Just("BLUEGREEN_SERVER_CONNECTIONS_MAX"),
        Just("BLUEGREEN_CLOUD_SPEED"),
        Just("BLUEGREEN_RUNNER_SHUTDOWN_GRACE"),
        Just("BLUEGREEN_LOG_FORMAT"),
        Just("BLUEGREEN_NOPE_KEY"),
    ];
    let env = prop::collection::btree_map(keys.prop_map(str::to_string), hostile_string(), 0..3);
    fuzz(
        "config",
        "tests/fuzz-regressions/config.txt",
        (prop_oneof![structured, textual], env),
        |(text, env)| check_config(&text, &env),
    );
}

// ---- API request bodies through the real router ------------------------------------

struct Rig {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: TempDir,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new("fuzz");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstore = \"{}\"\napi_rate = 1000000\napi_burst = 1000000\nwebhook_rate = 1000000\nwebhook_burst = 1000000\n[cloud]\nkind = \"sim\"\n{}",
        dir.store_url(),
        app_toml("web", "")
    );
    let config = Config::parse(&text, Origin::BuiltIn, &BTreeMap::new()).unwrap();
    let router = rt.block_on(async {
        let store = Store::connect(&config.server.store).await.unwrap();
        let cloud = DevCloud::new(&config.seed_drafts()).unwrap();
        let runner = Runner::start(
            cloud,
            store,
            svc_util::clock(),
            config.templates(),
            config.runner.limits(),
        )
        .await
        .unwrap();
        let state = ApiState::new(runner, &config, API_TOKEN, WEBHOOK_TOKEN, None);
        api::router(Arc::new(state), Duration::from_secs(30))
    });
    Rig {
        rt,
        router,
        _dir: dir,
    }
}

#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    token: Option<&'static str>,
    body: Vec<u8>,
}

fn calls() -> impl Strategy<Value = Call> {
    let create = json!({"app": "web", "image": "web:v2", "supersede": false});
    let abort = json!({"reason": "because"});
    let event = a_push();
    let body = prop_oneof![
        mutations().prop_map(move |m| mutate(create.clone(), &m).to_string().into_bytes()),
        mutations().prop_map(move |m| mutate(abort.clone(), &m).to_string().into_bytes()),
        mutations().prop_map(move |m| mutate(event.clone(), &m).to_string().into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let route = prop_oneof![
        Just((Method::POST, "/v1/deployments".to_string(), Some(API_TOKEN))),
        Just((
            Method::POST,
            "/v1/webhooks/ecr".to_string(),
            Some(WEBHOOK_TOKEN)
        )),
        "(promote|abort|pause|resume|nope)".prop_map(|a| (
            Method::POST,
            format!("/v1/deployments/web-20261122T030405-1/{a}"),
            Some(API_TOKEN)
        )),
        "[a-z=&?0-9%:._-]{0,40}".prop_map(|q| (
            Method::GET,
            format!("/v1/deployments?{q}"),
            Some(API_TOKEN)
        )),
        "[a-z=&?0-9%._-]{0,40}".prop_map(|q| (
            Method::GET,
            format!("/v1/deployments/web-1/journal?{q}"),
            Some(API_TOKEN)
        )),
        "[a-z=&?0-9%._-]{0,40}".prop_map(|q| (
            Method::GET,
            format!("/v1/apps?{q}"),
            Some(API_TOKEN)
        )),
        Just((Method::POST, "/v1/deployments".to_string(), None)),
    ];
    (route, body).prop_map(|((method, path, token), body)| Call {
        method,
        path,
        token,
        body,
    })
}

#[test]
fn fuzz_api_bodies_through_the_router() {
    let rig = rig();
    fuzz("api", "tests/fuzz-regressions/api.txt", calls(), |call| {
        let Ok(uri) = call.path.parse::<axum::http::Uri>() else {
            return Ok(());
        };
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = call.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(call.body.clone())).unwrap();
        let status = rig
            .rt
            .block_on(rig.router.clone().oneshot(req))
            .unwrap()
            .status();
        prop_assert!(!status.is_server_error(), "{call:?} → {status}");
        Ok(())
    });
}
