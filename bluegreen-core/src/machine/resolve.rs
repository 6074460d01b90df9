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
            also: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{
        AlarmObservation, AlarmState, AlarmStates, ErrorClass, ListenerState, MetricData,
        MetricQuery, MetricRequest, MetricSeries, TargetWeight,
    };
    use crate::plan::example_spec;
    use crate::spec::ListenerRef;
    use crate::time::Timestamp;

    fn tw(tg: &str, weight: u32) -> TargetWeight {
        TargetWeight {
            target_group: tg.into(),
            weight,
        }
    }

    fn listener() -> ListenerRef {
        ListenerRef {
            listener_arn: "arn:l".into(),
            rule_arn: None,
        }
    }

    fn alarms_read() -> CommandKind {
        CommandKind::Observe(Observe::Alarms {
            names: vec!["a".into(), "b".into()].into(),
        })
    }

    fn alarms(seen: &[&str], missing: &[&str]) -> CommandResult {
        CommandResult::Observed(Observation::Alarms(AlarmStates {
            alarms: seen
                .iter()
                .map(|n| AlarmObservation {
                    name: (*n).into(),
                    state: AlarmState::Ok,
                    reason: Name::default(),
                })
                .collect(),
            missing: missing.iter().map(|n| (*n).into()).collect(),
        }))
    }

    fn metrics_read() -> CommandKind {
        CommandKind::Observe(Observe::Metrics(MetricRequest {
            start: Timestamp::from_millis(0),
            end: Timestamp::from_millis(60_000),
            queries: vec![MetricQuery {
                id: "green5xx".into(),
                namespace: "AWS/ApplicationELB".into(),
                metric_name: "HTTPCode_Target_5XX_Count".into(),
                dimensions: vec![],
                stat: "Sum".into(),
                period_s: 60,
            }],
        }))
    }

    fn series(id: &str, values: Vec<f64>) -> CommandResult {
        CommandResult::Observed(Observation::Metrics(MetricData {
            series: vec![MetricSeries {
                id: id.into(),
                values,
            }],
        }))
    }

    /// The error's (class, code) and whether its message holds `words`.
    fn refused(kind: &CommandKind, result: &CommandResult, words: &str) -> (ErrorClass, String) {
        let e = validate(&example_spec(), kind, result).unwrap_err();
        assert!(
            e.message.contains(words),
            "{words:?} not in {:?}",
            e.message
        );
        (e.class, e.code)
    }

    fn fatal() -> (ErrorClass, String) {
        (ErrorClass::Fatal, "BadResponse".into())
    }

    #[test]
    fn results_that_answer_what_was_asked_pass() {
        let spec = example_spec();
        let weights = vec![tw("b", 90), tw("g", 10)];
        let set = CommandKind::SetListenerWeights {
            listener: listener(),
            weights: weights.clone(),
        };
        let ok = |kind: &CommandKind, result: CommandResult| {
            assert_eq!(validate(&spec, kind, &result), Ok(()), "{kind:?}");
        };
        ok(
            &set,
            CommandResult::WeightsSet(ListenerState { forwards: weights }),
        );
        ok(&alarms_read(), alarms(&["a"], &["b"]));
        ok(&alarms_read(), alarms(&[], &[]));
        ok(&metrics_read(), series("green5xx", vec![0.0, 3.0]));
        ok(
            &CommandKind::Observe(Observe::Listener(listener())),
            CommandResult::Observed(Observation::Listener(ListenerState {
                forwards: (0..5).map(|i| tw(&format!("t{i}"), 999)).collect(),
            })),
        );
    }

    #[test]
    fn results_beyond_what_was_asked_or_what_aws_allows_are_refused_by_name() {
        let set = CommandKind::SetListenerWeights {
            listener: listener(),
            weights: vec![tw("b", 90), tw("g", 10)],
        };
        let back =
            |forwards: Vec<TargetWeight>| CommandResult::WeightsSet(ListenerState { forwards });
        assert_eq!(
            refused(&set, &back(vec![tw("b", 100), tw("g", 0)]), "after writing"),
            (ErrorClass::Retryable, "ReadBackMismatch".into()),
            "a read-back that differs is retried, not trusted"
        );
        assert_eq!(
            refused(&set, &back(vec![tw("b", 1000)]), "weight over 999"),
            fatal()
        );
        let six: Vec<TargetWeight> = (0..6).map(|i| tw(&format!("t{i}"), 1)).collect();
        assert_eq!(
            refused(&set, &back(six.clone()), "more than 5 targets"),
            fatal()
        );
        let read = CommandKind::Observe(Observe::Listener(listener()));
        let seen =
            |forwards| CommandResult::Observed(Observation::Listener(ListenerState { forwards }));
        assert_eq!(refused(&read, &seen(six), "more than 5 targets"), fatal());
        assert_eq!(
            refused(&read, &seen(vec![tw("b", 1000)]), "over 999"),
            fatal()
        );
        assert_eq!(
            refused(
                &alarms_read(),
                &alarms(&["a", "z"], &[]),
                "alarm z was not asked for"
            ),
            fatal()
        );
        assert_eq!(
            refused(
                &alarms_read(),
                &alarms(&[], &["y"]),
                "alarm y was not asked for"
            ),
            fatal(),
            "a missing alarm that was not asked for is as foreign as a seen one"
        );
        assert_eq!(
            refused(
                &metrics_read(),
                &series("other", vec![]),
                "series other was not asked for"
            ),
            fatal()
        );
        assert_eq!(
            refused(
                &metrics_read(),
                &series("green5xx", vec![1.0, f64::NAN]),
                "non-finite"
            ),
            fatal()
        );
        assert_eq!(
            refused(
                &alarms_read(),
                &CommandResult::Scaled,
                "answered observe-alarms with a result of another kind"
            ),
            fatal()
        );
        let task_set = CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: "td:2".into(),
            target_group: "g".into(),
            like_task_set: "ts-blue".into(),
            external_id: "web-1".into(),
        });
        assert_eq!(
            refused(
                &task_set,
                &CommandResult::GreenEnsured { task_set: None },
                "no ARN"
            ),
            fatal()
        );
        let register = CommandKind::RegisterTaskDefinition {
            base: "td:1".into(),
            container: "web".into(),
            image: "img".into(),
        };
        assert_eq!(
            refused(
                &register,
                &CommandResult::TaskDefinitionRegistered { arn: "".into() },
                "empty task-definition ARN"
            ),
            fatal()
        );
    }

    fn service(
        td: &str,
        desired: u32,
        task_sets: Vec<crate::command::TaskSetStatus>,
    ) -> CommandResult {
        CommandResult::Observed(Observation::Service(Box::new(
            crate::command::ServiceStatus {
                service: "web".into(),
                status: "ACTIVE".into(),
                desired_count: desired,
                running_count: desired,
                pending_count: 0,
                task_definition: td.into(),
                target_groups: [].into(),
                task_sets,
                failed_tasks: 0,
                also: None,
            },
        )))
    }

    fn ts(arn: &str, external_id: &str, td: &str, status: &str) -> crate::command::TaskSetStatus {
        crate::command::TaskSetStatus {
            id: arn.into(),
            arn: arn.into(),
            status: status.into(),
            external_id: Some(external_id.into()),
            task_definition: td.into(),
            target_groups: [].into(),
            computed_desired_count: 2,
            running_count: 2,
            pending_count: 0,
            stability_status: "STEADY_STATE".into(),
        }
    }

    #[test]
    fn a_write_counts_as_applied_only_when_the_read_shows_its_whole_effect() {
        let ensure = CommandKind::EnsureGreen(EnsureGreen::Service {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: "td:2".into(),
            desired_count: 3,
        });
        let ensured = Some(CommandResult::GreenEnsured { task_set: None });
        assert_eq!(applied(&ensure, &service("td:2", 3, vec![])), ensured);
        assert_eq!(
            applied(&ensure, &service("td:1", 3, vec![])),
            None,
            "old revision"
        );
        assert_eq!(
            applied(&ensure, &service("td:2", 2, vec![])),
            None,
            "old size"
        );

        let create = CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: "td:2".into(),
            target_group: "g".into(),
            like_task_set: "ts-blue".into(),
            external_id: "web-1".into(),
        });
        let with = |sets| service("td:1", 3, sets);
        assert_eq!(
            applied(
                &create,
                &with(vec![
                    ts("ts-blue", "web-0", "td:1", "PRIMARY"),
                    ts("ts-g", "web-1", "td:2", "ACTIVE")
                ])
            ),
            Some(CommandResult::GreenEnsured {
                task_set: Some("ts-g".into())
            })
        );
        assert_eq!(
            applied(
                &create,
                &with(vec![ts("ts-g", "web-1", "td:2", "DRAINING")])
            ),
            None,
            "being deleted"
        );
        assert_eq!(
            applied(&create, &with(vec![ts("ts-g", "web-1", "td:1", "ACTIVE")])),
            None,
            "another revision"
        );
        assert_eq!(
            applied(&create, &with(vec![ts("ts-g", "web-2", "td:2", "ACTIVE")])),
            None,
            "another deployment's"
        );

        let scale = CommandKind::ScaleEnvironment {
            cluster: "prod".into(),
            service: "web".into(),
            desired_count: 0,
        };
        assert_eq!(
            applied(&scale, &service("td:1", 0, vec![])),
            Some(CommandResult::Scaled)
        );
        assert_eq!(applied(&scale, &service("td:1", 3, vec![])), None);

        let delete = CommandKind::DeleteEnvironment {
            cluster: "prod".into(),
            service: "web".into(),
            task_set: "ts-blue".into(),
        };
        assert_eq!(
            applied(&delete, &with(vec![])),
            Some(CommandResult::Deleted)
        );
        assert_eq!(
            applied(
                &delete,
                &with(vec![ts("ts-blue", "web-0", "td:1", "DRAINING")])
            ),
            Some(CommandResult::Deleted),
            "draining is deleted"
        );
        assert_eq!(
            applied(
                &delete,
                &with(vec![ts("ts-blue", "web-0", "td:1", "ACTIVE")])
            ),
            None
        );
        assert_eq!(
            applied(
                &delete,
                &with(vec![ts("ts-other", "web-0", "td:1", "ACTIVE")])
            ),
            Some(CommandResult::Deleted),
            "another task set is not this one"
        );

        let primary = CommandKind::SetPrimaryTaskSet {
            cluster: "prod".into(),
            service: "web".into(),
            task_set: "ts-g".into(),
        };
        assert_eq!(
            applied(
                &primary,
                &with(vec![ts("ts-g", "web-1", "td:2", "PRIMARY")])
            ),
            Some(CommandResult::PrimarySet)
        );
        assert_eq!(
            applied(
                &primary,
                &with(vec![
                    ts("ts-g", "web-1", "td:2", "ACTIVE"),
                    ts("ts-b", "web-0", "td:1", "PRIMARY")
                ])
            ),
            None
        );

        let register = CommandKind::RegisterTaskDefinition {
            base: "td:1".into(),
            container: "web".into(),
            image: "img".into(),
        };
        assert_eq!(
            applied(
                &register,
                &CommandResult::TaskDefinitionFound {
                    arn: Some("td:2".into())
                }
            ),
            Some(CommandResult::TaskDefinitionRegistered { arn: "td:2".into() })
        );
        assert_eq!(
            applied(&register, &CommandResult::TaskDefinitionFound { arn: None }),
            None
        );

        let weights = vec![tw("b", 90), tw("g", 10)];
        let set = CommandKind::SetListenerWeights {
            listener: listener(),
            weights: weights.clone(),
        };
        let seen =
            |forwards| CommandResult::Observed(Observation::Listener(ListenerState { forwards }));
        assert_eq!(
            applied(&set, &seen(weights.clone())),
            Some(CommandResult::WeightsSet(ListenerState {
                forwards: weights
            }))
        );
        assert_eq!(applied(&set, &seen(vec![tw("b", 100), tw("g", 0)])), None);
    }
}
