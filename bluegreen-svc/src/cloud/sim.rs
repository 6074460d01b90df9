//! `[cloud] kind = "sim"`: the simulated world (bluegreen-sim) seeded from the config's apps — each app's
//! cluster, services (or EXTERNAL service with one primary task set), target groups,
//! listener and alarms exist, slot a live at 100 % — on the runner's clock, with the
//! profile and seed from `[cloud]`. Without the `sim` feature, `kind = "sim"` runs on
//! ideal in-process worlds ([`DevCloud`]) instead.

use std::sync::Arc;

#[cfg(not(feature = "sim"))]
use crate::cloud::dev::DevCloud;
use crate::config::Config;
use crate::runner::Clock;

/// The simulated cloud the service runs on.
#[cfg(feature = "sim")]
pub type SimKind = bluegreen_sim::SimCloud;
#[cfg(not(feature = "sim"))]
pub type SimKind = DevCloud;

/// Build the simulated cloud for `config`'s apps on `clock`.
#[cfg(feature = "sim")]
pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<SimKind, bluegreen_core::SpecError> {
    use bluegreen_sim::{World, WorldProfile};
    let drafts = config.seed_drafts();
    for d in &drafts {
        d.validate()?;
    }
    let mut profile = match config.cloud.profile {
        crate::config::SimProfile::Fast => WorldProfile::fast(),
        crate::config::SimProfile::Aws => WorldProfile::aws(),
    };
    if !config.cloud.throttle {
        // Benches of the service itself: no account-wide API rate limits.
        let open = bluegreen_sim::world::BucketSpec {
            burst: 1_000_000,
            per_s: 1_000_000,
        };
        profile.limits = bluegreen_sim::world::ApiLimits {
            ecs_describe: open,
            ecs_mutate: open,
            ecs_tasks: open,
            ecs_register: open,
            ecs_task_definitions: open,
            elb_describe: open,
            elb_modify: open,
            cw_describe_alarms: open,
            cw_get_metric_data: open,
        };
    }
    let world = World::seeded(&drafts, &profile, config.cloud.seed, clock.now());
    Ok(bluegreen_sim::SimCloud::new(
        world,
        Arc::new(move || clock.now()),
    ))
}

#[cfg(not(feature = "sim"))]
pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<SimKind, bluegreen_core::SpecError> {
    let _ = clock;
    DevCloud::new(&config.seed_drafts())
}
