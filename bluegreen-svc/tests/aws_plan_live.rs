//! `bluegreen plan --live` through the real binary against the local AWS emulator: it
//! reads the account (describe calls only), lists the writes a deployment would make in
//! order — from the account's own revision numbers, live slot and weights — and changes
//! nothing; on a listener left mid-shift it says the deployment would be rejected, and
//! why, with exit code 1.

mod support;

use aws_sdk_elasticloadbalancingv2::types as elb;
use support::fixture::{ALARM, CLUSTER, CONTAINER, Fixture, WEB_SERVICES};
use support::moto::Moto;

async fn plan_live(config: &std::path::Path, moto: &str, cw: &str) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bluegreen"))
        .args(["plan", "web", "--image", "web:v2", "--live", "--config"])
        .arg(config)
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn task_definitions(fx: &Fixture) -> usize {
    fx.ecs
        .list_task_definitions()
        .send()
        .await
        .expect("list task definitions")
        .task_definition_arns()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_live_lists_the_writes_from_the_accounts_state_and_changes_nothing() {
    let Some(moto) = Moto::start_or_skip("aws_plan_live").await else {
        return;
    };
    let fx = Fixture::build(&moto).await;
    let bridge = support::cbor_bridge::CborBridge::start(&moto.endpoint).await;
    let dir = std::env::temp_dir().join(format!("bluegreen-plan-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bluegreen.toml");
    std::fs::write(
        &config,
        format!(
            r#"
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
strategy = {{ kind = "canary", percent = 10, wait = "5m" }}
bake = "10m"
drain = "1m"
"#,
            a = WEB_SERVICES[0],
            b = WEB_SERVICES[1],
            tg0 = fx.web_target_groups[0],
            tg1 = fx.web_target_groups[1],
            listener = fx.web_listener,
        ),
    )
    .unwrap();
    let revisions = task_definitions(&fx).await;
    let weights = fx.production_weights().await;
    let (code, out) = plan_live(&config, &moto.endpoint, &bridge.endpoint).await;
    assert_eq!(code, 0, "{out}");
    // What the account holds now, then each write in order.
    for line in [
        "production: web-a 100 % / web-b 0 %",
        "service web-a: web:1, desired count 2",
        "service web-b: web:1, desired count 0",
        "1.",
        "[create-green] register a revision of web:1 with container web = web:v2",
        "[create-green] service web-b: task definition web:2, desired count 2",
        "[shift] production listener: web-a 90 % / web-b 10 %",
        "[shift] production listener: web-a 0 % / web-b 100 %",
        "[drain-blue] service web-a: desired count 0",
        "outcome: completed",
        "service web-a after: web:1, desired count 0",
        "service web-b after: web:2, desired count 2",
        "then tags target group web-b: bluegreen:live=true bluegreen:slot=b bluegreen:outcome=completed",
        "nothing written",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Nothing changed in the account.
    assert_eq!(fx.production_weights().await, weights);
    assert_eq!(fx.service(WEB_SERVICES[1]).await.desired_count(), 0);
    assert_eq!(task_definitions(&fx).await, revisions, "nothing registered");

    // A listener left mid-shift: the deployment would be refused, and plan says why.
    fx.elb
        .modify_listener()
        .listener_arn(&fx.web_listener)
        .default_actions(
            elb::Action::builder()
                .r#type(elb::ActionTypeEnum::Forward)
                .forward_config(
                    elb::ForwardActionConfig::builder()
                        .target_groups(
                            elb::TargetGroupTuple::builder()
                                .target_group_arn(&fx.web_target_groups[0])
                                .weight(90)
                                .build(),
                        )
                        .target_groups(
                            elb::TargetGroupTuple::builder()
                                .target_group_arn(&fx.web_target_groups[1])
                                .weight(10)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("set 90/10 by hand");
    let (code, out) = plan_live(&config, &moto.endpoint, &bridge.endpoint).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("outcome: rejected"), "{out}");
    assert!(out.contains("writes: none"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
