//! The many-seed sweep: 10,000 seeds across every profile (2,500 each, seed `s` under
//! `Profile::for_seed(s)`, exactly as `bluegreen-sim run --seeds 10000` assigns them),
//! every invariant audited after every event; every 50th seed runs twice and its trace
//! hashes are compared. A failing seed is printed with a one-line reproduce command.
//!
//! Runs in `cargo test --workspace` (core and sim are opt-level 3 even in dev). Override
//! the count with `BLUEGREEN_SIM_SEEDS` (e.g. 100000 for a long local soak).

use bluegreen_sim::harness::report::reproduce_command;
use bluegreen_sim::{Profile, Sim, SimOptions, Summary};

const SEEDS_DEFAULT: u64 = 10_000;
const DETERMINISM_EVERY: u64 = 50;

fn seeds() -> u64 {
    std::env::var("BLUEGREEN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT)
}

fn sweep(profile: Profile) {
    let total = seeds();
    let mut summary = Summary::default();
    let mut nondeterministic = Vec::new();
    let started = std::time::Instant::now();
    for seed in (0..total).filter(|s| Profile::for_seed(*s) == profile) {
        let r = std::panic::catch_unwind(|| Sim::run_seed(seed, profile, SimOptions::default()));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                summary.add_panic(seed, profile, msg);
                continue;
            }
        };
        if seed % DETERMINISM_EVERY == 0 {
            let again = Sim::run_seed(seed, profile, SimOptions::default());
            if again.trace_hash != r.trace_hash {
                nondeterministic.push(seed);
            }
        }
        summary.add(&r);
    }
    println!(
        "{} profile: {} seeds in {:.1} s\n{summary}",
        profile.name(),
        summary.seeds,
        started.elapsed().as_secs_f64()
    );
    let mut problems: Vec<String> = summary
        .failed
        .iter()
        .map(|(seed, p, v)| {
            format!(
                "seed {seed} ({p}): {v}\n  reproduce: {}",
                reproduce_command(*seed, profile)
            )
        })
        .collect();
    problems.extend(nondeterministic.iter().map(|seed| {
        format!(
            "seed {seed}: two runs gave different traces\n  reproduce: {}",
            reproduce_command(*seed, profile)
        )
    }));
    assert!(
        problems.is_empty(),
        "{} failing seed(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        summary.deployments >= summary.seeds,
        "every seed deploys something"
    );
    assert!(
        summary.audit_checks > summary.deployments,
        "the auditor looked"
    );
}

#[test]
fn sweep_calm_seeds_keep_every_invariant() {
    sweep(Profile::Calm);
}

#[test]
fn sweep_fast_seeds_keep_every_invariant_under_swarm_faults() {
    sweep(Profile::Fast);
}

#[test]
fn sweep_aws_seeds_keep_every_invariant_under_swarm_faults() {
    sweep(Profile::Aws);
}

#[test]
fn sweep_storm_seeds_keep_every_invariant_under_emergent_throttling() {
    sweep(Profile::Storm);
}
