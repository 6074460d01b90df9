//! The real `bluegreen` binary on the AWS adapter, against the local AWS emulator (moto,
//! with the test playing ECS's part: targets follow services), killed with SIGKILL in the
//! middle of the traffic shift and started again on the same SQLite file: the world
//! survived, the deployment resumes and completes.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fixture::{CLUSTER, CONTAINER, Fixture, WEB_SERVICES};
use support::moto::Moto;

const API_TOKEN: &str = "sigkill-api-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(config: &std::path::Path, dir: &std::path::Path, endpoint: &str, log: &str) -> Child {
    let out = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_bluegreen"))
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("BLUEGREEN_API_TOKEN", API_TOKEN)
        .env(
            "BLUEGREEN_WEBHOOK_TOKEN",
            "sigkill-webhook-token-0123456789",
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("the bluegreen binary starts")
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http.get(url).bearer_auth(API_TOKEN).send().await.ok()?;
    resp.json().await.ok()
}

/// Poll until `cond` holds for the deployment (bounded).
async fn wait_deployment(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(v) = get(http, url).await
            && cond(&v)
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_binary_killed_with_sigkill_mid_shift_resumes_against_the_emulator() {
    let Some(moto) = Moto::start_or_skip("svc_sigkill").await else {
        return;
    };
    moto.manual_task_transitions().await;
    let fx = Arc::new(Fixture::build(&moto).await);
    let _player = fx.spawn_ecs_player(Duration::from_millis(100));

    let dir = std::env::temp_dir().join(format!("bluegreen-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
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
strategy = {{ kind = "canary", percent = 10, wait = "8s" }}
bake = "1s"
drain = "1s"
health = {{ healthy_observations_min = 2, degraded_observations_max = 3 }}
timeouts = {{ deploy = "2m", health = "2m", approval = "10m", command = "20s", scale_down = "2m" }}
pacing = {{ poll_interval = "500ms", attempts_max = 6, retry_min = "200ms", retry_max = "2s" }}
"#,
            store = dir.join("bluegreen.db").display(),
            a = WEB_SERVICES[0],
            b = WEB_SERVICES[1],
            tg0 = fx.web_target_groups[0],
            tg1 = fx.web_target_groups[1],
            listener = fx.web_listener,
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut first = spawn(&config, &dir, &moto.endpoint, "first.log");
    let start = Instant::now();
    while get(&http, &format!("{base}/healthz")).await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = http
        .post(format!("{base}/v1/deployments"))
        .bearer_auth(API_TOKEN)
        .body(r#"{"app":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{base}/v1/deployments/{id}");
    wait_deployment(&http, &url, "the canary step", |v| {
        v["phase"] == "shift" && v["weights"]["green"] == 10
    })
    .await;
    assert_eq!(
        fx.production_weights().await,
        (90, 10),
        "the emulator holds the canary weights"
    );

    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    let mut second = spawn(&config, &dir, &moto.endpoint, "second.log");
    let done = wait_deployment(&http, &url, "the resumed deployment to finish", |v| {
        v["state"] == "finished"
    })
    .await;
    assert_eq!(done["phase"], "completed", "{done}");
    assert_eq!(fx.production_weights().await, (0, 100));
    assert_eq!(
        fx.service(WEB_SERVICES[0]).await.desired_count(),
        0,
        "blue scaled to zero"
    );
    let journal = http
        .get(format!("{url}/journal"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        journal.matches(r#""input":"restarted""#).count(),
        1,
        "the journal shows the resume"
    );
    // The adapter's per-call counter is exported by the service.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("bluegreen_aws_calls_total{"), "{metrics}");
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
