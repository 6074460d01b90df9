//! Pinned seeds: each once broke an invariant (a core bug the simulator found, or an
//! auditor false alarm) and must stay clean — and deterministic — from now on.

use bluegreen_sim::harness::report::reproduce_command;
use bluegreen_sim::{Profile, Sim, SimOptions};

/// (seed, profile, what it found).
const PINNED: &[(u64, Profile, &str)] = &[
    (
        885,
        Profile::Fast,
        "rollback re-sent an interrupted green-raising write (core fix 1619fb3)",
    ),
    (
        1793,
        Profile::Fast,
        "blue removed on a stale look at a dark green (core fix in 15601b2)",
    ),
    (
        3397,
        Profile::Fast,
        "blue removed on a stale look at a dark green",
    ),
    (
        5053,
        Profile::Fast,
        "blue removed on a stale look at a dark green (task sets)",
    ),
    (
        5189,
        Profile::Fast,
        "blue removed on a stale look at a dark green",
    ),
    (
        9229,
        Profile::Fast,
        "blue removed on a stale look at a dark green (task sets)",
    ),
    (
        8122,
        Profile::Aws,
        "blue removed on a stale look at a dark green (task sets)",
    ),
    (
        1339,
        Profile::Storm,
        "blue removed on a stale look at a dark green",
    ),
    (
        4179,
        Profile::Storm,
        "blue removed on a stale look at a dark green",
    ),
    (
        8839,
        Profile::Storm,
        "blue removed on a stale look at a dark green",
    ),
    (
        17785,
        Profile::Fast,
        "task sets: blue deleted on a look from before the primary swap (core fix a4cb6f0)",
    ),
    (
        30637,
        Profile::Fast,
        "task sets: blue deleted on a look from before the primary swap",
    ),
    (
        30917,
        Profile::Fast,
        "task sets: blue deleted on a look from before the primary swap",
    ),
    (
        36658,
        Profile::Aws,
        "task sets: blue deleted on a look from before the primary swap",
    ),
    (
        32411,
        Profile::Storm,
        "task sets: blue deleted on a look from before the swap's throttled retries",
    ),
    (
        267,
        Profile::Storm,
        "auditor: a test-listener restore found already applied needs no write",
    ),
    (
        511,
        Profile::Storm,
        "auditor: a production restore found already applied needs no write",
    ),
];

#[test]
fn pinned_regression_seeds_stay_clean_and_deterministic() {
    let mut bad = Vec::new();
    for &(seed, profile, what) in PINNED {
        let a = Sim::run_seed(seed, profile, SimOptions::default());
        let b = Sim::run_seed(seed, profile, SimOptions::default());
        if !a.ok() || a.trace_hash != b.trace_hash {
            bad.push(format!(
                "seed {seed} ({}; once: {what}): {:?}\n  reproduce: {}",
                profile.name(),
                a.violations.first().map(|v| v.to_string()),
                reproduce_command(seed, profile)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
