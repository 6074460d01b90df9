//! Drive N happy-path canary deployments against the ideal cloud and print the steps made
//! (used with `valgrind --tool=callgrind` to count instructions per step independently
//! of machine load: `cargo build --release -p bluegreen-core --example steps`).
use bluegreen_core::plan::{IdealCloud, drive, example_spec};
use bluegreen_core::{Deployment, DeploymentId, Timestamp};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let spec = example_spec();
    let id = DeploymentId::new("bench-1").unwrap();
    let start = Timestamp::from_millis(1_800_000_000_000);
    let mut steps = 0;
    for _ in 0..n {
        let mut d = Deployment::new(id.clone(), spec.clone(), start);
        let mut cloud = IdealCloud::new(&spec);
        steps += drive(&mut d, &mut cloud, start, true, u64::MAX, |_, _, _| {}).steps;
        assert!(d.is_terminal());
    }
    println!("{n} deployments, {steps} steps");
}
