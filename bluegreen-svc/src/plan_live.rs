//! `bluegreen plan --live`: what a deployment would do to the account *now*, without
//! doing any of it.
//!
//! The real machine runs from preflight. Its reads — preflight's checks, the listener,
//! both services, the task-definition lookup — go to the real cloud until the machine
//! wants its first write; from then on nothing reaches the cloud: the dry run goes on
//! against [`IdealCloud`], which has taken in every real answer (`IdealCloud::adopt`), so
//! revisions, desired counts, the live slot and the weights continue from the account's.
//! Every write the machine issues is listed, in order, with its phase and when it would
//! go out on an ideal run. Hooks are never called (they answer "pass" in the dry run).
//! A preflight that fails on the real account is the plan's outcome (`rejected`, with
//! the reason): `plan --live` doubles as a check that a deployment can start.

use std::fmt;

use bluegreen_core::arn::short_name;
use bluegreen_core::plan::IdealCloud;
use bluegreen_core::{
    Cloud, Command, CommandKind, CommandResult, Deployment, DeploymentId, DeploymentSpec,
    EnsureGreen, Input, Observation, Observe, OperatorRequest, Output, PhaseName, Timestamp,
};
use serde::Serialize;

/// Bound on machine steps of the dry run (the same as `Plan`'s).
const STEPS_MAX: u64 = 50_000_000;

/// One write the deployment would make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedWrite {
    /// Milliseconds after the start on an ideal run (everything healthy at once).
    pub at_ms: u64,
    pub phase: PhaseName,
    /// The command's kind (`set-listener-weights`, …).
    pub command: &'static str,
    /// What changes, in the account's own names.
    pub change: String,
}

/// The account as the plan sees it: per slot, its service's desired count and task
/// definition, and the production weights.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub services: Vec<(String, u32, String)>,
    pub production: Vec<(String, u32)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LivePlan {
    pub app: String,
    pub image: String,
    /// Read from the account (describe calls only).
    pub before: AccountView,
    /// Calls made to the account (all reads).
    pub reads: u64,
    pub writes: Vec<PlannedWrite>,
    /// `completed`, or how the dry run ended (`rejected` when preflight failed).
    pub outcome: PhaseName,
    pub reason: Option<String>,
    /// The account after the deployment, if it completes.
    pub after: AccountView,
    /// The tags written after the outcome, per slot's target group (best effort).
    pub tags_after: Vec<(String, Vec<(String, String)>)>,
}

/// Run the plan against `cloud` (reads only).
pub async fn plan_live<C: Cloud>(cloud: &C, spec: &DeploymentSpec) -> LivePlan {
    let start = Timestamp::from_millis(1_800_000_000_000);
    let id = DeploymentId::new("plan-live").expect("a valid id");
    let mut d = Deployment::new(id, spec.clone(), start);
    let mut ideal = IdealCloud::new(spec);
    let mut before = AccountView::default();
    let mut writes = Vec::new();
    let mut reads = 0u64;
    let mut live = true; // still reading the real account
    let mut now = start;
    let mut inbox = vec![Input::Wake];
    let mut steps = 0u64;
    while steps < STEPS_MAX {
        for input in inbox.drain(..) {
            let _ = d.handle(now, input);
            steps += 1;
        }
        if d.phase_name() == PhaseName::Approval {
            let _ = d.handle(now, Input::Operator(OperatorRequest::Promote));
        }
        let wake_at = loop {
            steps += 1;
            match d.poll(now) {
                Output::Command(c) => {
                    let result = if live && is_account_read(&c) {
                        reads += u64::from(c.kind.aws_calls_min());
                        let r = cloud.execute(&c).await;
                        if let Ok(ok) = &r {
                            ideal.adopt(&c, ok);
                            note_before(&mut before, &c, ok, spec);
                        }
                        r
                    } else {
                        if c.kind.is_write() {
                            live = false;
                            writes.push(PlannedWrite {
                                at_ms: now.ms_since(start),
                                phase: d.phase_name(),
                                command: c.kind.name(),
                                change: describe(&c, spec),
                            });
                        }
                        ideal.respond(&c)
                    };
                    inbox.push(Input::CommandDone {
                        id: c.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at } => break wake_at,
            }
        };
        if d.is_terminal() {
            break;
        }
        if inbox.is_empty() {
            match wake_at {
                Some(t) => {
                    now = t;
                    inbox.push(Input::Wake);
                }
                None => break,
            }
        }
    }
    let after = if d.phase_name() == PhaseName::Completed {
        account_after(&ideal, spec)
    } else {
        AccountView::default()
    };
    let tags_after = match d.outcome_tags() {
        Some(CommandKind::TagSlots {
            target_groups,
            live_slot,
            deployment,
            outcome,
        }) => target_groups
            .iter()
            .enumerate()
            .map(|(slot, tg)| {
                (
                    short_name(tg).to_string(),
                    vec![
                        ("bluegreen:live".into(), (slot == live_slot).to_string()),
                        ("bluegreen:slot".into(), ["a", "b"][slot.min(1)].into()),
                        ("bluegreen:deployment".into(), deployment.to_string()),
                        ("bluegreen:outcome".into(), outcome.to_string()),
                    ],
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    LivePlan {
        app: spec.app.to_string(),
        image: match &spec.artifact {
            bluegreen_core::Artifact::Image(i) | bluegreen_core::Artifact::TaskDefinition(i) => {
                i.to_string()
            }
        },
        before,
        reads,
        writes,
        outcome: d.phase_name(),
        reason: d.outcome_reason().map(|r| r.to_string()),
        after,
        tags_after,
    }
}

/// Reads that go to the account while it is still the account's state: never hooks
/// (they are the user's endpoints, not reads) and never metrics (nothing to plan from).
fn is_account_read(c: &Command) -> bool {
    matches!(
        c.kind,
        CommandKind::Preflight(_)
            | CommandKind::FindTaskDefinition { .. }
            | CommandKind::Observe(
                Observe::Listener(_)
                    | Observe::Service { .. }
                    | Observe::TargetHealth { .. }
                    | Observe::Alarms { .. }
            )
    )
}

fn note_before(view: &mut AccountView, c: &Command, result: &CommandResult, spec: &DeploymentSpec) {
    match (&c.kind, result) {
        (
            CommandKind::Observe(Observe::Service { service, .. }),
            CommandResult::Observed(Observation::Service(s)),
        ) if !view.services.iter().any(|(n, _, _)| n == service) => {
            view.services.push((
                service.to_string(),
                s.desired_count,
                short_name(&s.task_definition).to_string(),
            ));
        }
        (
            CommandKind::Observe(Observe::Listener(_)),
            CommandResult::Observed(Observation::Listener(l)),
        ) if view.production.is_empty()
            && c.kind == CommandKind::Observe(Observe::Listener(spec.listener.clone())) =>
        {
            // Both slots, a missing one at 0 %, then anything else the action forwards to.
            let total = l.forwards.iter().map(|f| f.weight).sum::<u32>().max(1);
            view.production = spec
                .target_groups
                .iter()
                .map(|tg| (short_name(tg).to_string(), l.weight_of(tg) * 100 / total))
                .collect();
            for (tg, pct) in percentages(&l.forwards) {
                if !view.production.iter().any(|(t, _)| *t == tg) {
                    view.production.push((tg, pct));
                }
            }
        }
        _ => {}
    }
}

fn percentages(forwards: &[bluegreen_core::TargetWeight]) -> Vec<(String, u32)> {
    let total: u32 = forwards.iter().map(|f| f.weight).sum::<u32>().max(1);
    forwards
        .iter()
        .map(|f| {
            (
                short_name(&f.target_group).to_string(),
                f.weight * 100 / total,
            )
        })
        .collect()
}

fn account_after(ideal: &IdealCloud, spec: &DeploymentSpec) -> AccountView {
    let (a, b) = ideal.weights_of_listener();
    let total = (a + b).max(1);
    let names: Vec<&bluegreen_core::Name> = match &spec.environment {
        bluegreen_core::EnvironmentModel::ServicePair { services } => services.iter().collect(),
        bluegreen_core::EnvironmentModel::TaskSet { .. } => Vec::new(),
    };
    AccountView {
        services: names
            .into_iter()
            .filter_map(|n| {
                ideal
                    .service_state(n)
                    .map(|(desired, td)| (n.to_string(), desired, short_name(td).to_string()))
            })
            .collect(),
        production: vec![
            (
                short_name(&spec.target_groups[0]).to_string(),
                a * 100 / total,
            ),
            (
                short_name(&spec.target_groups[1]).to_string(),
                b * 100 / total,
            ),
        ],
    }
}

/// A write in the account's own names.
fn describe(c: &Command, spec: &DeploymentSpec) -> String {
    match &c.kind {
        CommandKind::RegisterTaskDefinition {
            base,
            container,
            image,
        } => format!(
            "register a revision of {} with container {container} = {image}",
            short_name(base)
        ),
        CommandKind::EnsureGreen(EnsureGreen::Service {
            service,
            task_definition,
            desired_count,
            ..
        }) => format!(
            "service {service}: task definition {}, desired count {desired_count}",
            short_name(task_definition)
        ),
        CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            service,
            task_definition,
            target_group,
            ..
        }) => format!(
            "service {service}: create a task set of {} behind {} at 100 % scale",
            short_name(task_definition),
            short_name(target_group)
        ),
        CommandKind::ScaleEnvironment {
            service,
            desired_count,
            ..
        } => format!("service {service}: desired count {desired_count}"),
        CommandKind::DeleteEnvironment {
            service, task_set, ..
        } => format!(
            "service {service}: delete task set {}",
            short_name(task_set)
        ),
        CommandKind::SetPrimaryTaskSet {
            service, task_set, ..
        } => format!(
            "service {service}: primary task set {}",
            short_name(task_set)
        ),
        CommandKind::SetListenerWeights { listener, weights } => {
            let which = if *listener == spec.listener {
                "production"
            } else {
                "test"
            };
            let split: Vec<String> = percentages(weights)
                .into_iter()
                .map(|(tg, pct)| format!("{tg} {pct} %"))
                .collect();
            format!("{which} listener: {}", split.join(" / "))
        }
        other => other.name().to_string(),
    }
}

impl fmt::Display for LivePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "live plan for {} → {}", self.app, self.image)?;
        writeln!(
            f,
            "read from the account ({} describe calls; nothing written):",
            self.reads
        )?;
        let split = |p: &[(String, u32)]| {
            p.iter()
                .map(|(tg, pct)| format!("{tg} {pct} %"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        if !self.before.production.is_empty() {
            writeln!(f, "  production: {}", split(&self.before.production))?;
        }
        for (service, desired, td) in &self.before.services {
            writeln!(f, "  service {service}: {td}, desired count {desired}")?;
        }
        if self.writes.is_empty() {
            writeln!(f, "writes: none")?;
        } else {
            writeln!(f, "writes, in order (time on an ideal run):")?;
            for (i, w) in self.writes.iter().enumerate() {
                writeln!(
                    f,
                    "  {:>2}. {:>8}  [{}] {}",
                    i + 1,
                    bluegreen_core::time::format_duration_human(w.at_ms),
                    w.phase,
                    w.change
                )?;
            }
        }
        match &self.reason {
            None => writeln!(f, "outcome: {}", self.outcome)?,
            Some(r) => writeln!(f, "outcome: {}: {r}", self.outcome)?,
        }
        if !self.after.production.is_empty() {
            writeln!(f, "  production after: {}", split(&self.after.production))?;
        }
        for (service, desired, td) in &self.after.services {
            writeln!(
                f,
                "  service {service} after: {td}, desired count {desired}"
            )?;
        }
        for (tg, tags) in &self.tags_after {
            let tags: Vec<String> = tags
                .iter()
                .filter(|(k, _)| k != "bluegreen:deployment")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "  then tags target group {tg}: {}", tags.join(" "))?;
        }
        Ok(())
    }
}
