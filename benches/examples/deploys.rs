//! Run N quiet simulated deployments exactly as `benches/sim.rs` times them, and print the
//! AWS calls they made. With `valgrind --tool=callgrind` this counts instructions per
//! deployment independently of the machine's load (BENCHMARKS.md):
//!
//! ```sh
//! cargo build --profile bench -p bluegreen-benches --example deploys
//! valgrind --tool=callgrind target/release/examples/deploys fast linear 100
//! ```
//!
//! Arguments: world (`fast` | `aws`), strategy (`all-at-once` | `canary` | `linear`),
//! model (`service-pair`, the default, or `task-set`), N.
use bluegreen_benches::{STRATEGIES, one_deployment};
use bluegreen_sim::WorldProfile;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let world = match args.first().map(String::as_str) {
        Some("aws") => WorldProfile::aws(),
        _ => WorldProfile::fast(),
    };
    let strategy = args.get(1).map_or("canary", String::as_str);
    let Some((_, strategy)) = STRATEGIES.iter().find(|(n, _)| *n == strategy) else {
        eprintln!("unknown strategy {strategy:?}: all-at-once, canary or linear");
        std::process::exit(2);
    };
    let task_set = args.get(2).is_some_and(|m| m == "task-set");
    let n: u64 = args
        .iter()
        .rev()
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let mut calls = 0;
    for _ in 0..n {
        let r = one_deployment(&world, strategy, task_set, false);
        assert!(r.ok(), "{:?}", r.violations);
        calls += r.deployments[0].aws_calls;
    }
    println!("{n} deployments, {calls} AWS calls");
}
