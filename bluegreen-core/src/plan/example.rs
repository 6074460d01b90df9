//! The built-in example: what `bluegreen` runs with no config file, and what the docs use.

use crate::spec::{
    Artifact, DeploymentSpec, EnvironmentModel, ListenerRef, Pacing, SpecDraft, Strategy, Timeouts,
};

/// A canary deployment of app `web` on the service pair `web-a`/`web-b`, with the
/// load-balancer resources named as the simulated world creates them.
pub fn example_spec() -> DeploymentSpec {
    DeploymentSpec::new(example_draft()).expect("the built-in example is valid")
}

/// The draft behind [`example_spec`], for callers that want to change a field.
pub fn example_draft() -> SpecDraft {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    SpecDraft {
        app: "web".into(),
        cluster: "prod".into(),
        environment: EnvironmentModel::ServicePair {
            services: ["web-a".into(), "web-b".into()],
        },
        target_groups: [
            format!("{arn}:targetgroup/web-a/0123456789abcdef").into(),
            format!("{arn}:targetgroup/web-b/fedcba9876543210").into(),
        ],
        listener: ListenerRef {
            listener_arn: format!("{arn}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2")
                .into(),
            rule_arn: None,
        },
        test_listener: None,
        test_traffic_ms: 0,
        container: "web".into(),
        artifact: Artifact::Image(
            format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:{}",
                "ab".repeat(32)
            )
            .into(),
        ),
        desired_count: None,
        strategy: Strategy::Canary {
            percent: 10,
            wait_ms: 60_000,
        },
        bake_ms: 60_000,
        drain_ms: 30_000,
        approval_timeout_ms: None,
        health: Default::default(),
        circuit_breaker: Default::default(),
        alarms: vec!["web-5xx".into()].into(),
        metrics: vec![],
        hooks: vec![],
        timeouts: Timeouts::default(),
        pacing: Pacing::default(),
    }
}
