//! bluegreen-core: machine steps per second, and one whole happy-path deployment driven
//! by an in-bench responder (`plan::IdealCloud`, which answers at once).
//!
//! A "step" is one call into the machine: `handle` or `poll`.

use std::hint::black_box;

use bluegreen_benches::CORE_STRATEGIES;
use bluegreen_core::plan::{IdealCloud, drive, example_draft};
use bluegreen_core::{Deployment, DeploymentId, DeploymentSpec, Strategy, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const START: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn spec(strategy: Strategy) -> DeploymentSpec {
    let mut d = example_draft();
    d.strategy = strategy;
    DeploymentSpec::new(d).unwrap()
}

/// Steps one deployment takes (the throughput unit).
fn steps_of(spec: &DeploymentSpec) -> u64 {
    let mut d = Deployment::new(DeploymentId::new("bench-1").unwrap(), spec.clone(), START);
    let mut cloud = IdealCloud::new(spec);
    drive(&mut d, &mut cloud, START, true, u64::MAX, |_, _, _| {}).steps
}

fn benches(c: &mut Criterion) {
    let id = DeploymentId::new("bench-1").unwrap();
    for (name, strategy) in CORE_STRATEGIES {
        let spec = spec(strategy);
        let steps = steps_of(&spec);
        let mut group = c.benchmark_group(format!("core/{name}"));
        group.throughput(Throughput::Elements(steps));
        // The machine and the responder together: one whole deployment per iteration.
        group.bench_function("deployment (steps/s)", |b| {
            b.iter(|| {
                let mut d = Deployment::new(id.clone(), spec.clone(), START);
                let mut cloud = IdealCloud::new(&spec);
                black_box(drive(
                    &mut d,
                    &mut cloud,
                    START,
                    true,
                    u64::MAX,
                    |_, _, _| {},
                ))
            })
        });
        group.finish();
    }

    // The machine alone: replay pre-recorded answers so the responder costs nothing.
    let spec = spec(Strategy::Canary {
        percent: 10,
        wait_ms: 60_000,
    });
    let script = record(&spec);
    let steps = script.len() as u64;
    let mut group = c.benchmark_group("core/machine-only");
    group.throughput(Throughput::Elements(steps));
    group.bench_function("canary replayed (steps/s)", |b| {
        b.iter(|| {
            let mut d = Deployment::new(id.clone(), spec.clone(), START);
            for s in &script {
                match s {
                    Step::Handle(at, input) => {
                        let _ = black_box(d.handle(*at, input.clone()));
                    }
                    Step::Poll(at) => {
                        let _ = black_box(d.poll(*at));
                    }
                }
            }
            black_box(d.phase_name())
        })
    });
    group.finish();
}

enum Step {
    Handle(Timestamp, bluegreen_core::Input),
    Poll(Timestamp),
}

/// Record the inputs and polls of one deployment, to replay without a responder.
fn record(spec: &DeploymentSpec) -> Vec<Step> {
    use bluegreen_core::{Input, Output};
    let mut d = Deployment::new(DeploymentId::new("bench-1").unwrap(), spec.clone(), START);
    let mut cloud = IdealCloud::new(spec);
    let mut now = START;
    let mut inbox = vec![Input::Wake];
    let mut script = Vec::new();
    loop {
        for input in inbox.drain(..) {
            script.push(Step::Handle(now, input.clone()));
            let _ = d.handle(now, input);
        }
        let wake_at;
        loop {
            script.push(Step::Poll(now));
            match d.poll(now) {
                Output::Command(c) => {
                    let result = cloud.respond(&c);
                    inbox.push(Input::CommandDone {
                        id: c.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at: w } => {
                    wake_at = w;
                    break;
                }
            }
        }
        if inbox.is_empty() {
            match wake_at {
                Some(t) => {
                    now = t;
                    inbox.push(Input::Wake);
                }
                None => break,
            }
        }
    }
    assert!(d.is_terminal());
    script
}

criterion_group!(core, benches);
criterion_main!(core);
