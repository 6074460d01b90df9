//! bluegreen-svc: the service around the core machine — the AWS adapter, the executor
//! and durable runner, the HTTP API and ECR webhook, and the `bluegreen` CLI.

pub mod aws;

pub mod alloc;
pub mod api;
pub mod awscloud;
pub mod cli;
pub mod config;
pub mod devcloud;
pub mod embed;
pub mod hooks;
pub mod notify;
pub mod plan_live;
pub mod remote;
pub mod runner;
pub mod serve;
pub mod simcloud;
pub mod store;
pub mod telemetry;
pub mod ui;
