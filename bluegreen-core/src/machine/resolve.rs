//! Result checks and the resolution of ambiguous writes.
//!
//! A write whose answer was lost may or may not have happened. Before anything else the
//! machine reads the state the write would have changed; if the write's effect is there,
//! the write counts as done (with a result made from the observation), otherwise it is
//! sent again with the same id (and so the same idempotency token).

use crate::command::{CommandError, CommandKind, CommandResult, EnsureGreen, Observation, Observe};
use crate::name::Name;
use crate::spec::DeploymentSpec;

use super::knowledge::holds;

/// The read that tells whether `write` took effect.
pub(crate) fn resolver(write: &CommandKind) -> Option<CommandKind> {
    let service = |cluster: &Name, service: &Name| {
        CommandKind::Observe(Observe::Service {
            cluster: cluster.clone(),
            service: service.clone(),
            failures: None,
        })
    };
    Some(match write {
        CommandKind::RegisterTaskDefinition {
            base,
            container,
            image,
        } => CommandKind::FindTaskDefinition {
            base: base.clone(),
            container: container.clone(),
            image: image.clone(),
        },
        CommandKind::EnsureGreen(EnsureGreen::Service {
            cluster,
            service: s,
            ..
        })
        | CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster,
            service: s,
            ..
        })
        | CommandKind::ScaleEnvironment {
            cluster,
            service: s,
            ..
        }
        | CommandKind::DeleteEnvironment {
            cluster,
            service: s,
            ..
        }
        | CommandKind::SetPrimaryTaskSet {
            cluster,
            service: s,
            ..
        } => service(cluster, s),
        CommandKind::SetListenerWeights { listener, .. } => {
            CommandKind::Observe(Observe::Listener(listener.clone()))
        }
        // Tags are never read back: nothing to resolve them by.
        CommandKind::Preflight(_)
        | CommandKind::FindTaskDefinition { .. }
        | CommandKind::TagSlots { .. }
        | CommandKind::PlaceScaling { .. }
        | CommandKind::Observe(_)
        | CommandKind::CallHook(_) => return None,
    })
}

/// `Some(result)` when the observation shows `write` applied.
pub(crate) fn applied(write: &CommandKind, observed: &CommandResult) -> Option<CommandResult> {
    match (write, observed) {
        (
            CommandKind::RegisterTaskDefinition { .. },
            CommandResult::TaskDefinitionFound { arn: Some(arn) },
        ) => Some(CommandResult::TaskDefinitionRegistered { arn: arn.clone() }),
        (
            CommandKind::EnsureGreen(EnsureGreen::Service {
                task_definition,
                desired_count,
                ..
            }),
            CommandResult::Observed(Observation::Service(s)),
        ) => (&s.task_definition == task_definition && s.desired_count == *desired_count)
            .then_some(CommandResult::GreenEnsured { task_set: None }),
        (
            CommandKind::EnsureGreen(EnsureGreen::TaskSet {
                external_id,
                task_definition,
                ..
            }),
            CommandResult::Observed(Observation::Service(s)),
        ) => s
            .task_sets
            .iter()
            .find(|ts| {
                ts.external_id.as_deref() == Some(external_id.as_str())
                    && &ts.task_definition == task_definition
                    && ts.status != "DRAINING"
            })
            .map(|ts| CommandResult::GreenEnsured {
                task_set: Some(ts.arn.clone()),
            }),
        (
            CommandKind::ScaleEnvironment { desired_count, .. },
            CommandResult::Observed(Observation::Service(s)),
        ) => (s.desired_count == *desired_count).then_some(CommandResult::Scaled),
        (
            CommandKind::DeleteEnvironment { task_set, .. },
            CommandResult::Observed(Observation::Service(s)),
        ) => (!s
            .task_sets
            .iter()
            .any(|ts| &ts.arn == task_set && ts.status != "DRAINING"))
        .then_some(CommandResult::Deleted),
        (
            CommandKind::SetPrimaryTaskSet { task_set, .. },
            CommandResult::Observed(Observation::Service(s)),
        ) => s
            .task_sets
            .iter()
            .any(|ts| &ts.arn == task_set && ts.status == "PRIMARY")
            .then_some(CommandResult::PrimarySet),
        (
            CommandKind::SetListenerWeights { weights, .. },
            CommandResult::Observed(Observation::Listener(state)),
        ) => holds(state, weights).then(|| CommandResult::WeightsSet(state.clone())),
        _ => None,
    }
}

/// ALB limits on a forward action.
const FORWARD_TARGETS_MAX: usize = 5;
const WEIGHT_MAX: u32 = 999;

/// Check a result against its command before believing it: the right kind, a listener
/// that reads back what was written, values within AWS's own limits.
pub(crate) fn validate(
    _spec: &DeploymentSpec,
    kind: &CommandKind,
    result: &CommandResult,
) -> Result<(), CommandError> {
    let bad = |msg: String| Err(CommandError::fatal("BadResponse", msg));
    if !kind.accepts(result) {
        return bad(format!(
            "the executor answered {} with a result of another kind",
            kind.name()
        ));
    }
    let listener_ok = |state: &crate::command::ListenerState| {
        state.forwards.len() <= FORWARD_TARGETS_MAX
            && state.forwards.iter().all(|f| f.weight <= WEIGHT_MAX)
    };
    match (kind, result) {
        (CommandKind::SetListenerWeights { weights, .. }, CommandResult::WeightsSet(state)) => {
            if !listener_ok(state) {
                return bad(
                    "listener read back with more than 5 targets or a weight over 999".into(),
                );
            }
            if !holds(state, weights) {
                return Err(CommandError::retryable(
                    "ReadBackMismatch",
                    format!(
                        "the listener holds {:?} after writing {:?}",
                        state.forwards, weights
                    ),
                ));
            }
        }
        (_, CommandResult::Observed(Observation::Listener(state))) if !listener_ok(state) => {
            return bad("listener with more than 5 targets or a weight over 999".into());
        }
        (
            CommandKind::EnsureGreen(EnsureGreen::TaskSet { .. }),
            CommandResult::GreenEnsured { task_set: None },
        ) => return bad("a task set was created but no ARN came back".into()),
        (_, CommandResult::TaskDefinitionRegistered { arn }) if arn.is_empty() => {
            return bad("an empty task-definition ARN came back".into());
        }
        (
            CommandKind::Observe(Observe::Alarms { names }),
            CommandResult::Observed(Observation::Alarms(a)),
        ) => {
            let unknown = a
                .alarms
                .iter()
                .map(|x| &x.name)
                .chain(a.missing.iter())
                .find(|n| !names.iter().any(|m| m == *n));
            if let Some(n) = unknown {
                return bad(format!("alarm {n} was not asked for"));
            }
        }
        (
            CommandKind::Observe(Observe::Metrics(req)),
            CommandResult::Observed(Observation::Metrics(data)),
        ) => {
            for s in &data.series {
                if !req.queries.iter().any(|q| q.id == s.id) {
                    return bad(format!("metric series {} was not asked for", s.id));
                }
                if s.values.iter().any(|v| !v.is_finite()) {
                    return bad(format!("metric series {} has a non-finite value", s.id));
                }
            }
        }
        _ => {}
    }
    Ok(())
}
