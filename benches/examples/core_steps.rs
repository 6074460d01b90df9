//! Drive N whole deployments through the core with the in-bench responder, exactly as
//! `benches/core.rs` times them — for `valgrind --tool=callgrind` (instructions per
//! step, independent of the machine's load):
//!
//! ```sh
//! cargo build --profile bench -p bluegreen-benches --example core_steps
//! valgrind --tool=callgrind target/release/examples/core_steps linear 1000
//! ```
use bluegreen_benches::CORE_STRATEGIES;
use bluegreen_core::plan::{IdealCloud, drive, example_draft};
use bluegreen_core::{Deployment, DeploymentId, DeploymentSpec, Timestamp};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strategy = args.first().map_or("canary", String::as_str);
    let Some((_, strategy)) = CORE_STRATEGIES.iter().find(|(n, _)| *n == strategy) else {
        eprintln!("unknown strategy {strategy:?}: all-at-once, canary or linear");
        std::process::exit(2);
    };
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut d = example_draft();
    d.strategy = strategy.clone();
    let spec = DeploymentSpec::new(d).expect("the example spec is valid");
    let start = Timestamp::from_millis(1_800_000_000_000);
    let id = DeploymentId::new("bench-1").expect("a valid id");
    let mut steps = 0;
    for _ in 0..n {
        let mut d = Deployment::new(id.clone(), spec.clone(), start);
        let mut cloud = IdealCloud::new(&spec);
        steps += drive(&mut d, &mut cloud, start, true, u64::MAX, |_, _, _| {}).steps;
    }
    println!("{n} deployments, {steps} steps");
}
