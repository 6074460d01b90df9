//! Test support for the AWS adapter (shared by `tests/aws_*.rs` and the emulator bench).
//!
//! - [`moto`]: the local AWS emulator on a free loopback port (skips with a message when
//!   it is not installed, fails under `CI=true`), reset between uses, stopped on drop.
//! - [`fixture`]: a realistic ALB + ECS fixture in the emulator; [`ecs_player`]: the part of ECS the
//!   emulator does not play (targets follow services and task sets). Reusable for
//!   out-of-process tests (e.g. a SIGKILL crash-resume of the service): see its docs.
//! - [`cbor_bridge`]: CloudWatch `DescribeAlarms` from the current SDK (RPC v2 CBOR) to
//!   moto (Query protocol), so alarm-triggered rollbacks run through the real adapter.
//! - [`query`]: a minimal Query-protocol client (EC2 default-VPC lookups, alarms).
//! - [`drive`]: a deployment driven through the core machine against any `Cloud`.
//! - [`serve`]: the real `bluegreen serve` binary against the emulator, bounded waits.
#![allow(dead_code)]

pub mod cbor_bridge;
pub mod drive;
pub mod ecs_player;
pub mod env;
pub mod fixture;
pub mod mock;
pub mod moto;
pub mod query;
pub mod recorder;
pub mod serve;
