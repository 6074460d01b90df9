//! The real `bluegreen` binary on the AWS adapter, against the local AWS emulator (moto,
//! with the test playing ECS's part: targets follow services), killed with SIGKILL in the
//! middle of the traffic shift and started again on the same SQLite file: the world
//! survived, the deployment resumes and completes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use support::fixture::{CLUSTER, CONTAINER, Fixture, WEB_SERVICES};
use support::moto::Moto;
use support::serve::{API_TOKEN, free_port, spawn_serve, until_up, wait_deployment};

/// The sigkill test's wait for a deployment: two minutes.
const WAIT: Duration = Duration::from_secs(120);

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

    let mut first = spawn_serve(&config, &dir, &moto.endpoint, &[], "first.log");
    until_up(&http, &base).await;
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
    wait_deployment(&http, &url, "the canary step", WAIT, |v| {
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

    let mut second = spawn_serve(&config, &dir, &moto.endpoint, &[], "second.log");
    let done = wait_deployment(&http, &url, "the resumed deployment to finish", WAIT, |v| {
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
