//! The real `bluegreen serve` binary against the emulator (out-of-process tests): spawn
//! it with AWS endpoints and tokens, wait for it to answer, poll a deployment until a
//! condition holds — every wait bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const API_TOKEN: &str = "emulator-api-token-0123456789";
pub const WEBHOOK_TOKEN: &str = "emulator-webhook-token-0123456789";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `bluegreen serve --config <config>` in `dir` on the AWS adapter, every AWS call to
/// `endpoint` (`AWS_ENDPOINT_URL`) plus `env` (e.g. `AWS_ENDPOINT_URL_CLOUDWATCH`), its
/// log in `dir/<log>`.
pub fn spawn_serve(
    config: &Path,
    dir: &Path,
    endpoint: &str,
    env: &[(&str, &str)],
    log: &str,
) -> Child {
    let out = std::fs::File::create(dir.join(log)).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bluegreen"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("BLUEGREEN_API_TOKEN", API_TOKEN)
        .env("BLUEGREEN_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the bluegreen binary starts")
}

pub async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http.get(url).bearer_auth(API_TOKEN).send().await.ok()?;
    resp.json().await.ok()
}

/// Wait (at most 30 s) until the service at `base` answers `/healthz`.
pub async fn until_up(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while get(http, &format!("{base}/healthz")).await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll the deployment at `url` until `cond` holds, at most `limit`.
pub async fn wait_deployment(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(v) = get(http, url).await
            && cond(&v)
        {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `bluegreen serve` running the fixture's `web` app on the AWS adapter against the
/// emulator (CloudWatch through `bridge`, the emulator speaking only Query), in a fresh
/// temporary directory, answering at `base`. Stopped and its directory removed on drop.
pub struct WebServe {
    pub dir: PathBuf,
    pub base: String,
    pub http: reqwest::Client,
    child: Child,
}

impl WebServe {
    /// Start it (all-at-once, watching the fixture's alarm, with this bake and poll
    /// interval) and wait until it answers.
    pub async fn start(
        tag: &str,
        moto: &super::moto::Moto,
        fx: &super::fixture::Fixture,
        bridge: &super::cbor_bridge::CborBridge,
        bake: &str,
        poll: &str,
    ) -> WebServe {
        let dir = std::env::temp_dir().join(format!("bluegreen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let port = free_port();
        let config = write_web_config(&dir, port, fx, bake, poll);
        let child = spawn_serve(
            &config,
            &dir,
            &moto.endpoint,
            &[("AWS_ENDPOINT_URL_CLOUDWATCH", &bridge.endpoint)],
            "serve.log",
        );
        let served = WebServe {
            dir,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            child,
        };
        until_up(&served.http, &served.base).await;
        served
    }
}

impl Drop for WebServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fixture's `web` app as `bluegreen serve` runs it on the AWS adapter (SQLite in
/// `dir`, listening on `port`): all-at-once, watching the fixture's alarm, with this bake
/// and poll interval. Returns the config file's path.
fn write_web_config(
    dir: &Path,
    port: u16,
    fx: &super::fixture::Fixture,
    bake: &str,
    poll: &str,
) -> PathBuf {
    use super::fixture::{ALARM, CLUSTER, CONTAINER, WEB_SERVICES};
    let config = dir.join("bluegreen.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
store = "sqlite://{store}"
[cloud]
kind = "aws"
[[apps]]
name = "web"
cluster = "{CLUSTER}"
services = ["{a}", "{b}"]
target_groups = ["{tg0}", "{tg1}"]
listener = "{listener}"
container = "{CONTAINER}"
alarms = ["{ALARM}"]
strategy = {{ kind = "all-at-once" }}
bake = "{bake}"
drain = "1s"
health = {{ healthy_observations_min = 1, degraded_observations_max = 3 }}
timeouts = {{ deploy = "2m", health = "2m", approval = "10m", command = "20s", scale_down = "2m" }}
pacing = {{ poll_interval = "{poll}", attempts_max = 6, retry_min = "200ms", retry_max = "2s" }}
"#,
            store = dir.join("bluegreen.db").display(),
            a = WEB_SERVICES[0],
            b = WEB_SERVICES[1],
            tg0 = fx.web_target_groups[0],
            tg1 = fx.web_target_groups[1],
            listener = fx.web_listener,
        ),
    )
    .expect("write the config");
    config
}

/// Start a deployment of `web` at `image` through the API; its id.
pub async fn deploy(http: &reqwest::Client, base: &str, image: &str) -> String {
    let resp = http
        .post(format!("{base}/v1/deployments"))
        .bearer_auth(API_TOKEN)
        .body(format!(r#"{{"app":"web","image":"{image}"}}"#))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.expect("a JSON answer");
    v["id"].as_str().expect("an id").to_string()
}
