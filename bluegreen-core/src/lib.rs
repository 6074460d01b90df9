//! # bluegreen-core
//!
//! The blue/green deployment state machine for Amazon ECS services behind an Application
//! Load Balancer — pure, sans-I/O, deterministic. It never reads a clock, never draws a
//! random number, never performs I/O: it is handed the time and the results of the
//! commands it asked for, and hands back values describing what to do next. The same
//! machine runs in the service (against AWS), in the simulator (against an in-memory
//! world in virtual time) and in your own tools.
//!
//! ```text
//!  preflight ─► create-green ─► deploy ─► health-check ─► [test traffic] ─► [approval] ─► shift ─► bake ─► drain-blue ─► completed
//!                     │            │            │                │               │           │        │
//!                     └────────────┴────────────┴────────────────┴───────────────┴───────────┴────────┴──► rollback ─► rolled-back
//! ```
//!
//! ## The loop
//!
//! Hand in an [`Input`] with [`Deployment::handle`], then drain [`Deployment::poll`] until
//! it returns [`Output::Idle`]. In between come [`Output::Command`]s to execute (report
//! each result back as [`Input::CommandDone`]) and [`Output::Notice`]s to record. Call
//! again at `wake_at` with [`Input::Wake`]. Calling early or twice is harmless.
//!
//! ## Driving a deployment by hand
//!
//! ```
//! use bluegreen_core::{Deployment, DeploymentId, Input, Output, PhaseName, Timestamp};
//! use bluegreen_core::plan::{IdealCloud, example_spec};
//!
//! let spec = example_spec();                      // a canary deployment of app "web"
//! let mut cloud = IdealCloud::new(&spec);         // answers like a healthy AWS would
//! let mut now = Timestamp::from_millis(1_800_000_000_000);
//! let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), spec, now);
//! let mut inbox = vec![Input::Wake];
//! for _ in 0..100_000 {
//!     for input in inbox.drain(..) {
//!         let _ = d.handle(now, input);
//!     }
//!     let mut wake_at = None;
//!     loop {
//!         match d.poll(now) {
//!             Output::Command(cmd) => {
//!                 // Your executor goes here; the ideal cloud answers at once.
//!                 let result = cloud.respond(&cmd);
//!                 inbox.push(Input::CommandDone { id: cmd.id.clone(), result });
//!             }
//!             Output::Notice(_) => {}
//!             Output::Idle { wake_at: w } => { wake_at = w; break; }
//!         }
//!     }
//!     if inbox.is_empty() {
//!         match wake_at {
//!             Some(t) => { now = t; inbox.push(Input::Wake); }
//!             None => break,                      // finished
//!         }
//!     }
//! }
//! assert_eq!(d.phase_name(), PhaseName::Completed);
//! assert_eq!(cloud.weights_of_listener(), (0, 100)); // blue 0, green 100
//! ```
//!
//! See `docs/state-machine.md` for the state diagram and the phase × input table.

pub mod admission;
pub mod arn;
pub mod budget;
pub mod cloud;
pub mod command;
pub mod ids;
pub mod io;
pub mod journal;
pub mod machine;
pub mod name;
pub mod plan;
pub mod spec;
pub mod time;

pub use arn::Arn;
pub use cloud::Cloud;
pub use command::{
    AlarmObservation, AlarmState, AlarmStates, Command, CommandError, CommandKind, CommandResult,
    EnsureGreen, ErrorClass, FailureFilter, HookCall, HookPayload, HookVerdict, ListenerState,
    MetricData, MetricQuery, MetricRequest, MetricSeries, Observation, Observe, Preflight,
    ServiceStatus, TargetHealth, TargetReason, TargetWeight, TaskSetStatus, Weights,
};
pub use ids::{CommandId, DeploymentId};
pub use io::{
    AlarmEvent, Input, Notice, OperatorRequest, Output, PhaseName, Reason, ReasonKind, Refused,
    Transition,
};
pub use machine::{Deployment, Phase, Status};
pub use name::Name;
pub use plan::Plan;
pub use spec::{
    Artifact, CircuitBreaker, DeploymentSpec, EnvironmentModel, HealthSpec, HookSpec, HookStage,
    ListenerRef, MetricCheck, MetricKind, Mode, Pacing, SpecDraft, SpecError, Strategy, Timeouts,
};
pub use time::Timestamp;
