//! The AWS adapter against the local emulator (moto):
//!
//! 1. AWS calls per deployment by strategy, as the adapter counted them, next to the
//!    plan's lower bound (`Plan::for_deployment`), printed as a table;
//! 2. the wall time of an all-at-once deployment with zero waits (criterion): every
//!    command over the wire to moto, the core machine in virtual time (it never sleeps),
//!    the fixture playing ECS (its own calls are outside the adapter's count but inside
//!    the wall time).
//!
//! `cargo bench -p bluegreen-svc --bench aws_emulator` (needs `.moto/`: run scripts/test
//! once, or set BLUEGREEN_MOTO_SERVER). Figures go to BENCHMARKS.md
//! ("## bluegreen-svc: AWS adapter").

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bluegreen_core::{
    Artifact, DeploymentId, DeploymentSpec, PhaseName, Plan, SpecDraft, Strategy,
};
use criterion::{Criterion, criterion_group, criterion_main};
use support::cbor_bridge::CborBridge;
use support::drive::Driver;
use support::ecs_player::PlaysEcs;
use support::fixture::Fixture;
use support::moto::Moto;

struct Bench {
    moto: Moto,
    bridge: CborBridge,
}

async fn fresh(b: &Bench) -> (Arc<Fixture>, PlaysEcs) {
    b.moto.reset().await;
    let fx = Arc::new(Fixture::build(&b.moto).await);
    let aws = fx.aws_cloud(&b.moto, &b.bridge).await;
    (fx.clone(), PlaysEcs::new(aws, fx))
}

async fn deploy(cloud: &PlaysEcs, id: &str, draft: SpecDraft) -> Driver {
    let mut d = Driver::new(id, draft);
    d.run(cloud, || cloud.aws.calls_total()).await;
    d
}

fn calls_table(rt: &tokio::runtime::Runtime, b: &Bench) {
    println!("\nAWS calls per deployment against the emulator (zero waits, poll 1 s, K = 3)");
    println!("| deployment | outcome | adapter calls | plan lower bound |");
    println!("|---|---|---|---|");
    type Make = fn(&Fixture) -> SpecDraft;
    let cases: [(&str, Make); 5] = [
        ("service pair, all-at-once", |fx| {
            fx.web_draft(Strategy::AllAtOnce)
        }),
        ("service pair, canary 10 % / 60 s", |fx| {
            fx.web_draft(Strategy::Canary {
                percent: 10,
                wait_ms: 60_000,
            })
        }),
        ("service pair, linear 25 % / 30 s", |fx| {
            fx.web_draft(Strategy::Linear {
                step_percent: 25,
                interval_ms: 30_000,
            })
        }),
        ("service pair, all-at-once + test listener", |fx| {
            let mut d = fx.web_draft(Strategy::AllAtOnce);
            d.test_listener = Some(bluegreen_core::ListenerRef {
                listener_arn: fx.web_test_listener.clone().into(),
                rule_arn: None,
            });
            d
        }),
        ("task set, all-at-once", |fx| {
            fx.api_draft(Strategy::AllAtOnce)
        }),
    ];
    for (name, make) in cases {
        rt.block_on(async {
            let (fx, cloud) = fresh(b).await;
            let draft = make(&fx);
            let id = "bench-calls-1";
            let spec = DeploymentSpec::new(draft.clone()).expect("valid");
            let plan = Plan::for_deployment(&DeploymentId::new(id).unwrap(), &spec);
            let d = deploy(&cloud, id, draft).await;
            println!(
                "| {name} | {:?} | {} | {} |",
                d.phase(),
                cloud.aws.calls_total(),
                plan.aws_calls_min
            );
            assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
        });
    }
    println!();
}

fn emulator(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let Some(bench) = rt.block_on(async {
        let moto = Moto::start_or_skip("aws_emulator bench").await?;
        let bridge = CborBridge::start(&moto.endpoint).await;
        Some(Bench { moto, bridge })
    }) else {
        return;
    };
    calls_table(&rt, &bench);

    let (fx, cloud) = rt.block_on(fresh(&bench));
    let n = AtomicU64::new(0);
    let mut group = c.benchmark_group("aws_emulator");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("all_at_once_deployment_zero_waits", |bencher| {
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Each deployment flips live and idle, with a new image (a new revision).
                let i = n.fetch_add(1, Ordering::Relaxed);
                let mut draft = fx.web_draft(Strategy::AllAtOnce);
                draft.artifact = Artifact::Image(format!("web:bench-{i}").into());
                let started = Instant::now();
                let d = rt.block_on(deploy(&cloud, &format!("bench-{i}"), draft));
                total += started.elapsed();
                assert_eq!(d.phase(), PhaseName::Completed, "{}", d.report());
            }
            total
        })
    });
    group.finish();
    let deployments = n.load(Ordering::Relaxed).max(1);
    let playing_ms = cloud.playing_ns.load(Ordering::Relaxed) as f64 / 1e6 / deployments as f64;
    println!(
        "\n{deployments} all-at-once deployments: {:.1} AWS calls each by the adapter; \
         {playing_ms:.1} ms each spent by the fixture playing ECS (included in the time above)",
        cloud.aws.calls_total() as f64 / deployments as f64
    );
}

criterion_group!(benches, emulator);
criterion_main!(benches);
