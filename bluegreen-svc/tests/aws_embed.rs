//! `examples/embed.rs` — the ≤ 40-line program that embeds bluegreen — deploys against
//! the local AWS emulator (moto; the test plays ECS's part and bridges CloudWatch):
//! production ends on green, blue is scaled to zero, and the snapshot file it keeps is
//! beside its config.

mod support;

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed_example;

use std::sync::Arc;
use std::time::Duration;

use support::cbor_bridge::CborBridge;
use support::fixture::{ALARM, CLUSTER, CONTAINER, Fixture, WEB_SERVICES};
use support::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_deploys_against_the_emulator() {
    let Some(moto) = Moto::start_or_skip("aws_embed").await else {
        return;
    };
    moto.manual_task_transitions().await;
    let fx = Arc::new(Fixture::build(&moto).await);
    let bridge = CborBridge::start(&moto.endpoint).await;
    let _player = fx.spawn_ecs_player(Duration::from_millis(100));
    let dir = std::env::temp_dir().join(format!("bluegreen-aws-embed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bluegreen.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[apps]]
name = "web"
cluster = "{CLUSTER}"
services = ["{a}", "{b}"]
target_groups = ["{tg0}", "{tg1}"]
listener = "{listener}"
container = "{CONTAINER}"
alarms = ["{ALARM}"]
strategy = {{ kind = "all-at-once" }}
bake = "1s"
drain = "1s"
health = {{ healthy_observations_min = 1, degraded_observations_max = 3 }}
pacing = {{ poll_interval = "500ms", attempts_max = 6, retry_min = "200ms", retry_max = "2s" }}
"#,
            a = WEB_SERVICES[0],
            b = WEB_SERVICES[1],
            tg0 = fx.web_target_groups[0],
            tg1 = fx.web_target_groups[1],
            listener = fx.web_listener,
        ),
    )
    .unwrap();
    let cloud = fx.aws_cloud(&moto, &bridge).await;
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2";
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        embed_example::deploy(cloud, &path, "web", image),
    )
    .await
    .expect("the deployment finishes")
    .expect("the example runs");
    assert!(outcome.succeeded(), "{:?}", outcome.reason);
    assert_eq!(fx.production_weights().await, (0, 100));
    assert_eq!(fx.service(WEB_SERVICES[0]).await.desired_count(), 0);
    assert!(dir.join("web.deployment.json").exists(), "the snapshot");
    let _ = std::fs::remove_dir_all(&dir);
}
