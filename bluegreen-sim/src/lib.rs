//! # bluegreen-sim
//!
//! A deterministic simulator for the bluegreen controller: an in-memory ECS / ELBv2 /
//! CloudWatch [`world`] advanced lazily in virtual time, [`SimCloud`] (the world behind
//! core's `Cloud` port, for the service), seeded faults, an invariant auditor that judges
//! the world (never the machine's beliefs) after every event, and a discrete-event
//! harness that runs many deployments of many apps per seed — a safety phase with
//! faults, then a liveness phase with faults healed.
//!
//! Same seed, same trace, byte for byte: no wall clock, no `HashMap` iteration, every
//! random draw descends from the seed. See `docs/sim.md`.

pub mod auditor;
pub mod cloud;
pub mod faults;
pub mod harness;
pub mod measure;
pub mod replay;
pub mod replay_world;
pub mod rng;
pub mod trace;
pub mod world;

pub use auditor::{Auditor, Invariant, Violation};
pub use cloud::{Clock, SimCloud};
pub use harness::{Profile, RunReport, Scenario, Sim, SimOptions, Summary};
pub use world::{World, WorldProfile};
