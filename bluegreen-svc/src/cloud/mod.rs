//! The clouds `serve`, the CLI and embedders drive, one per `[cloud] kind`, behind one
//! enum ([`AnyCloud`]) for code that picks at run time:
//!
//! - [`aws`]: the AWS adapter (ECS, ELBv2, CloudWatch through `aws-sdk-*`) over the
//!   standard credential chain — production;
//! - [`sim`]: the simulated world of `bluegreen-sim` seeded from the config's apps (or,
//!   without the `sim` feature, [`dev`]'s ideal in-process worlds) — demos and tests;
//! - [`remote`]: a simulated world served by another process (`bluegreen sim-cloud`),
//!   shared by several replicas — the HA tests.
//!
//! Every one implements core's `Cloud`; hooks are added on top by
//! `crate::hooks::HookedCloud`.

use bluegreen_core::{Cloud, Command, CommandError, CommandResult};

pub mod aws;
pub mod dev;
pub mod remote;
pub mod sim;

use aws::AwsKind;
use sim::SimKind;

/// Either cloud, for code that picks at run time (the CLI's in-process controller).
pub enum AnyCloud {
    Sim(Box<SimKind>),
    Aws(Box<AwsKind>),
    Remote(Box<crate::cloud::remote::RemoteCloud>),
}

impl Cloud for AnyCloud {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        match self {
            AnyCloud::Sim(c) => c.execute(command).await,
            AnyCloud::Aws(c) => c.execute(command).await,
            AnyCloud::Remote(c) => c.execute(command).await,
        }
    }
}
