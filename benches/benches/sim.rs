//! bluegreen-sim: full simulated deployments per second (the machine, the world, the
//! harness and the auditor together), and AWS calls per deployment by strategy against
//! the plan's lower bound (printed once before the timings).
//!
//! `cargo bench -p bluegreen-benches --bench sim`

use std::hint::black_box;

use bluegreen_benches::{STRATEGIES, draft, one_deployment};
use bluegreen_core::plan::{IdealCloud, drive};
use bluegreen_core::{Deployment, DeploymentId, DeploymentSpec, Plan, Timestamp};
use bluegreen_sim::{Profile, Sim, SimOptions, Summary, WorldProfile};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn print_calls_table() {
    eprintln!("AWS calls per completed deployment vs the plan's lower bound (no faults):");
    eprintln!(
        "{:<8} {:<13} {:<12} {:>7} {:>9} {:>6}",
        "world", "mode", "strategy", "calls", "plan min", "ratio"
    );
    for (wname, world) in [("fast", WorldProfile::fast()), ("aws", WorldProfile::aws())] {
        for task_set in [false, true] {
            for (name, strategy) in &STRATEGIES {
                let r = one_deployment(&world, strategy, task_set, true);
                let d = &r.deployments[0];
                assert!(r.ok(), "{:?}", r.violations);
                let spec = DeploymentSpec::new(draft(strategy, task_set)).unwrap();
                let plan = Plan::for_deployment(&DeploymentId::new("web-1").unwrap(), &spec);
                eprintln!(
                    "{wname:<8} {:<13} {name:<12} {:>7} {:>9} {:>6.2}",
                    if task_set { "task-set" } else { "service-pair" },
                    d.aws_calls,
                    plan.aws_calls_min,
                    d.aws_calls as f64 / plan.aws_calls_min as f64
                );
            }
        }
    }
    let mut calm = Summary::default();
    for seed in (0..2_000).filter(|s| Profile::for_seed(*s) == Profile::Calm) {
        calm.add(&Sim::run_seed(seed, Profile::Calm, SimOptions::default()));
    }
    eprintln!("calm swarm (500 seeds, AWS timings, random specs):\n{calm}");
}

fn benches(c: &mut Criterion) {
    print_calls_table();
    let mut g = c.benchmark_group("sim-deployment");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    for (wname, world) in [("fast", WorldProfile::fast()), ("aws", WorldProfile::aws())] {
        for (name, strategy) in &STRATEGIES {
            g.bench_function(
                BenchmarkId::new(format!("{wname}/service-pair"), name),
                |b| b.iter(|| black_box(one_deployment(&world, strategy, false, false))),
            );
        }
    }
    let canary = &STRATEGIES[1].1;
    g.bench_function("fast/service-pair/canary+plan", |b| {
        b.iter(|| black_box(one_deployment(&WorldProfile::fast(), canary, false, true)))
    });
    g.bench_function("fast/task-set/canary", |b| {
        b.iter(|| black_box(one_deployment(&WorldProfile::fast(), canary, true, false)))
    });
    // The machine alone on core's instant responder: the ceiling the simulator can reach.
    let spec = DeploymentSpec::new(draft(canary, false)).unwrap();
    let start = Timestamp::from_millis(1_800_000_000_000);
    g.bench_function("core-only/ideal-cloud/canary", |b| {
        b.iter(|| {
            let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec.clone(), start);
            let mut cloud = IdealCloud::new(&spec);
            black_box(drive(
                &mut d,
                &mut cloud,
                start,
                true,
                u64::MAX,
                |_, _, _| {},
            ))
        })
    });
    g.finish();

    // Swarm seeds: many apps, faults, crashes — deployments per second of real sweeps.
    let mut g = c.benchmark_group("sim-swarm");
    g.sample_size(10);
    for profile in [Profile::Calm, Profile::Fast, Profile::Aws] {
        let seeds: Vec<u64> = (0..200)
            .filter(|s| Profile::for_seed(*s) == profile)
            .collect();
        let deployments: usize = seeds
            .iter()
            .map(|s| {
                Sim::run_seed(*s, profile, SimOptions::default())
                    .deployments
                    .len()
            })
            .sum();
        g.throughput(Throughput::Elements(deployments as u64));
        g.bench_function(format!("{}/50-seeds", profile.name()), |b| {
            b.iter(|| {
                for s in &seeds {
                    black_box(Sim::run_seed(*s, profile, SimOptions::default()));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(sim, benches);
criterion_main!(sim);
