//! bluegreen-svc: the service around the core machine — the AWS adapter, the executor
//! and durable runner, the HTTP API and ECR webhook, and the `bluegreen` CLI.

pub mod aws;
