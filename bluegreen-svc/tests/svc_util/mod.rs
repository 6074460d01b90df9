//! Shared by the service tests: a server on 127.0.0.1:0 over a temporary SQLite file and
//! the in-process dev cloud, an HTTP client, and bounded waits on conditions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bluegreen_svc::cloud::dev::DevCloud;
use bluegreen_svc::config::{Config, Origin};
use bluegreen_svc::runner::{Clock, ScaledClock};
use bluegreen_svc::serve::{Secrets, Server};
use bluegreen_svc::store::{Store, Stored};
use serde_json::Value;

pub const API_TOKEN: &str = "test-api-token-0123456789";
pub const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";
/// The test clock runs this many times faster than the wall clock.
pub const SPEED: u32 = 20;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bluegreen-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn store_url(&self) -> String {
        format!("sqlite://{}", self.0.join("bluegreen.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One app's `[[apps]]` block, paced for tests (a deployment is ~20 s of virtual time).
pub fn app_toml(name: &str, extra: &str) -> String {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    format!(
        r#"
[[apps]]
name = "{name}"
cluster = "test"
services = ["{name}-a", "{name}-b"]
target_groups = ["{arn}:targetgroup/{name}-a/0001", "{arn}:targetgroup/{name}-b/0002"]
listener = "{arn}:listener/app/{name}/0003/0004"
container = "{name}"
repository = "{name}"
tags = ["v*"]
strategy = {{ kind = "canary", percent = 10, wait = "5s" }}
bake = "2s"
drain = "1s"
health = {{ healthy_observations_min = 2, degraded_observations_max = 3 }}
timeouts = {{ deploy = "10m", health = "10m", approval = "1h", command = "1m", scale_down = "10m" }}
pacing = {{ poll_interval = "1s", attempts_max = 6, retry_min = "200ms", retry_max = "1s" }}
{extra}
"#
    )
}

pub fn config(dir: &TempDir, apps: &str) -> Config {
    config_with(dir, "", apps)
}

/// A test config with extra `[server]` lines (limits).
pub fn config_with(dir: &TempDir, server: &str, apps: &str) -> Config {
    let text = format!(
        // A short lease: a restarted (or second) runner takes over within ~2 s.
        "[server]\nlisten = \"127.0.0.1:0\"\nstore = \"{}\"\n{server}\n[cloud]\nkind = \"sim\"\n[runner]\nlease_ttl = \"2s\"\nscan = \"100ms\"\n{apps}",
        dir.store_url()
    );
    Config::parse(&text, Origin::BuiltIn, &BTreeMap::new()).expect("test config")
}

pub fn secrets() -> Secrets {
    Secrets {
        api_token: API_TOKEN.into(),
        webhook_token: WEBHOOK_TOKEN.into(),
        hook_secret: Some(b"test-hook-secret".to_vec()),
        dev: false,
    }
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(ScaledClock::starting_now(SPEED))
}

/// A running test server.
pub struct Harness {
    pub dir: TempDir,
    pub config: Config,
    pub cloud: Arc<DevCloud>,
    pub server: Option<Server<Arc<DevCloud>>>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(apps: &str) -> Harness {
        let dir = TempDir::new("svc");
        let config = config(&dir, apps);
        let cloud = Arc::new(DevCloud::new(&config.seed_drafts()).expect("dev cloud"));
        Self::start_with(dir, config, cloud).await
    }

    /// A server with extra `[server]` lines (limits).
    pub async fn start_server(server: &str, apps: &str) -> Harness {
        let dir = TempDir::new("svc");
        let config = config_with(&dir, server, apps);
        let cloud = Arc::new(DevCloud::new(&config.seed_drafts()).expect("dev cloud"));
        Self::start_with(dir, config, cloud).await
    }

    pub async fn start_with(dir: TempDir, config: Config, cloud: Arc<DevCloud>) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = Server::start(&config, cloud.clone(), clock(), secrets(), listener)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
        Harness {
            dir,
            config,
            cloud,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(API_TOKEN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(API_TOKEN), Some(body))
            .await
    }

    pub async fn webhook(&self, body: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/v1/webhooks/ecr",
            Some(WEBHOOK_TOKEN),
            Some(body),
        )
        .await
    }

    pub async fn deploy(&self, app: &str, image: &str) -> String {
        let (status, v) = self
            .post(
                "/v1/deployments",
                &format!(r#"{{"app":"{app}","image":"{image}"}}"#),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    pub async fn deployment(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/v1/deployments/{id}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Wait until the deployment's state is `finished` (or another end) and return it.
    pub async fn finished(&self, id: &str) -> Value {
        wait_for(
            &format!("deployment {id} to finish"),
            Duration::from_secs(30),
            || async {
                let v = self.deployment(id).await;
                matches!(
                    v["state"].as_str(),
                    Some("finished" | "superseded" | "cancelled")
                )
                .then_some(v)
            },
        )
        .await
    }

    pub async fn phase_is(&self, id: &str, phase: &str) -> Value {
        wait_for(
            &format!("deployment {id} to reach {phase}"),
            Duration::from_secs(30),
            || async {
                let v = self.deployment(id).await;
                (v["phase"].as_str() == Some(phase)).then_some(v)
            },
        )
        .await
    }
}

/// Poll `check` until it yields a value; panic with `what` after `limit`. The poll pause
/// is short and the limit bounds the whole wait.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait on the store directly (no server needed) until `cond` holds for the deployment.
pub async fn stored_until(
    store: &Store,
    id: &str,
    what: &str,
    cond: impl Fn(&Stored) -> bool,
) -> Stored {
    let limit = Duration::from_secs(30);
    let start = Instant::now();
    loop {
        if let Some(s) = store.get(id).await.expect("store read")
            && cond(&s)
        {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// An ECR push event as an EventBridge API destination delivers it.
pub fn push_event(repository: &str, tag: Option<&str>, digest: &str) -> String {
    let tag = tag
        .map(|t| format!(r#","image-tag":"{t}""#))
        .unwrap_or_default();
    format!(
        r#"{{"version":"0","id":"4f5ec4d5-4de4-7aad-a046-56d5cfe1df0e","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-22T03:04:05Z","region":"us-east-1","resources":[],"detail":{{"result":"SUCCESS","repository-name":"{repository}","image-digest":"{digest}","action-type":"PUSH"{tag}}}}}"#
    )
}
