//! bluegreen-svc: the service around the core machine — the clouds it drives (`cloud`:
//! the AWS adapter, the simulated world, a remote simulated world), the durable runner,
//! the HTTP API and webhooks, and the `bluegreen` CLI.

pub mod alloc;
pub mod api;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod embed;
pub mod hooks;
pub mod notify;
pub mod plan_live;
pub mod runner;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod ui;
