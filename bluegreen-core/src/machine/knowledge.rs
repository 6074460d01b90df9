//! What the machine has learned about the world, from command results only.
//!
//! Phases read it; only the driver writes it (in [`Knowledge::absorb`]), so a result that
//! arrives after the phase moved on (an abort during a create, say) is still learned —
//! rollback needs to know a green task set exists even if create-green never saw it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{
    AlarmStates, CommandKind, CommandResult, HookVerdict, ListenerState, MetricData, Observation,
    Observe, ServiceStatus, TargetHealth, TargetWeight, TaskSetStatus, Weights,
};
use crate::name::Name;
use crate::spec::{DeploymentSpec, EnvironmentModel, ListenerRef};
use crate::time::Timestamp;

/// A value and when the machine learned it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample<T> {
    pub at: Timestamp,
    pub value: T,
}

/// Which slot is blue, read from the production listener at preflight — never assumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sides {
    /// 0 or 1: index into the spec's `target_groups` (and `services`).
    pub blue: usize,
    /// Green's size (the spec's `desired_count`, or blue's desired count).
    pub desired_count: u32,
    pub blue_task_definition: Name,
    /// Task-set model: blue's task set ARN.
    pub blue_task_set: Option<Name>,
    /// The test listener as it was before the deployment (restored on rollback).
    pub test_listener_original: Option<ListenerState>,
}

impl Sides {
    pub fn green(&self) -> usize {
        1 - self.blue
    }

    /// Blue's service (service pair) or the service holding blue's task set.
    pub fn blue_service<'a>(&self, spec: &'a DeploymentSpec) -> &'a Name {
        match &spec.environment {
            EnvironmentModel::ServicePair { services } => &services[self.blue],
            EnvironmentModel::TaskSet { service } => service,
        }
    }

    /// Green's service (service pair) or the service holding green's task set.
    pub fn green_service<'a>(&self, spec: &'a DeploymentSpec) -> &'a Name {
        match &spec.environment {
            EnvironmentModel::ServicePair { services } => &services[self.green()],
            EnvironmentModel::TaskSet { service } => service,
        }
    }

    pub fn blue_tg<'a>(&self, spec: &'a DeploymentSpec) -> &'a Name {
        &spec.target_groups[self.blue]
    }

    pub fn green_tg<'a>(&self, spec: &'a DeploymentSpec) -> &'a Name {
        &spec.target_groups[self.green()]
    }
}

/// Everything learned so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knowledge {
    /// Production weights as last written and read back (or observed at preflight).
    pub prod_weights: Weights,
    /// When production weights were last written (guards want observations newer).
    pub prod_written_at: Option<Timestamp>,
    /// Test-listener weights once the machine has pointed it at green.
    pub test_weights: Option<Weights>,
    pub green_task_definition: Option<Name>,
    /// Task-set model: green's task set ARN once created (or found).
    pub green_task_set: Option<Name>,
    /// When green was first asked for: task failures before this are not green's.
    pub green_since: Option<Timestamp>,
    /// When health-check passed (K consecutive healthy observations).
    pub green_healthy_at: Option<Timestamp>,
    /// When the drain wait ended and blue's removal began.
    pub blue_removal_at: Option<Timestamp>,
    pub prod_listener: Option<Sample<ListenerState>>,
    pub test_listener: Option<Sample<ListenerState>>,
    pub services: BTreeMap<Name, Sample<ServiceStatus>>,
    pub target_health: BTreeMap<Name, Sample<TargetHealth>>,
    pub alarms: Option<Sample<AlarmStates>>,
    pub metrics: Option<Sample<MetricData>>,
    pub hook_verdicts: BTreeMap<Name, Sample<HookVerdict>>,
    pub hook_calls: BTreeMap<Name, u32>,
    /// Observation batches issued so far (names command ids).
    pub ticks: u64,
    /// Green's size once it followed blue's scale-out (service pair, no pinned
    /// `desired_count`): blue's largest desired count seen before the shift completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_desired: Option<u32>,
}

impl Default for Knowledge {
    fn default() -> Self {
        Knowledge {
            prod_weights: Weights::ALL_BLUE,
            prod_written_at: None,
            test_weights: None,
            green_task_definition: None,
            green_task_set: None,
            green_since: None,
            green_healthy_at: None,
            blue_removal_at: None,
            prod_listener: None,
            test_listener: None,
            services: BTreeMap::new(),
            target_health: BTreeMap::new(),
            alarms: None,
            metrics: None,
            hook_verdicts: BTreeMap::new(),
            hook_calls: BTreeMap::new(),
            ticks: 0,
            green_desired: None,
        }
    }
}

/// Percent weights for a listener state across our two target groups (blue, green).
pub(crate) fn weights_from(
    state: &ListenerState,
    blue_tg: &str,
    green_tg: &str,
) -> Option<Weights> {
    let total = state.total_weight();
    if total == 0 {
        return None;
    }
    let (b, g) = (state.weight_of(blue_tg), state.weight_of(green_tg));
    if b + g != total {
        return None;
    }
    // Round green to the nearest percent; ALB weights are relative, not percentages.
    let green = ((u64::from(g) * 100 + u64::from(total) / 2) / u64::from(total)) as u8;
    Some(Weights::green(green))
}

/// The forwards that express `weights` across blue and green.
pub(crate) fn forwards(blue_tg: &Name, green_tg: &Name, w: Weights) -> Vec<TargetWeight> {
    vec![
        TargetWeight {
            target_group: blue_tg.clone(),
            weight: u32::from(w.blue),
        },
        TargetWeight {
            target_group: green_tg.clone(),
            weight: u32::from(w.green),
        },
    ]
}

/// Does the listener hold exactly these forwards (ignoring order and zero-weight extras
/// of the same groups)?
pub(crate) fn holds(state: &ListenerState, wanted: &[TargetWeight]) -> bool {
    let total_wanted: u32 = wanted.iter().map(|w| w.weight).sum();
    state.total_weight() == total_wanted
        && wanted
            .iter()
            .all(|w| state.weight_of(&w.target_group) == w.weight)
}

impl Knowledge {
    /// Learn from a successful result (taking it: observations are kept, not copied).
    pub(crate) fn absorb(
        &mut self,
        spec: &DeploymentSpec,
        sides: Option<&Sides>,
        kind: &CommandKind,
        result: CommandResult,
        now: Timestamp,
    ) {
        match (kind, result) {
            (_, CommandResult::TaskDefinitionFound { arn: Some(arn) })
            | (_, CommandResult::TaskDefinitionRegistered { arn }) => {
                self.green_task_definition = Some(arn);
            }
            (
                _,
                CommandResult::GreenEnsured {
                    task_set: Some(arn),
                },
            ) => {
                self.green_task_set = Some(arn);
            }
            (
                CommandKind::SetListenerWeights { listener, weights },
                CommandResult::WeightsSet(state),
            ) => {
                self.record_listener(spec, listener, state, now);
                if let Some(w) = sides.and_then(|s| percent_of(spec, s, weights)) {
                    if listener == &spec.listener {
                        self.prod_weights = w;
                        self.prod_written_at = Some(now);
                    } else if Some(listener) == spec.test_listener.as_ref() {
                        self.test_weights = Some(w);
                    }
                }
            }
            (
                CommandKind::Observe(Observe::Listener(l)),
                CommandResult::Observed(Observation::Listener(state)),
            ) => {
                self.record_listener(spec, l, state, now);
            }
            (_, CommandResult::Observed(Observation::Service(mut s))) => {
                if let Some(also) = s.also.take() {
                    self.record_service(*also, now);
                }
                self.record_service(*s, now);
            }
            (
                CommandKind::Observe(Observe::TargetHealth { target_group }),
                CommandResult::Observed(Observation::TargetHealth(h)),
            ) => match self.target_health.get_mut(target_group) {
                Some(sample) => *sample = Sample { at: now, value: h },
                None => {
                    self.target_health
                        .insert(target_group.clone(), Sample { at: now, value: h });
                }
            },
            (_, CommandResult::Observed(Observation::Alarms(a))) => {
                self.alarms = Some(Sample { at: now, value: a });
            }
            (_, CommandResult::Observed(Observation::Metrics(m))) => {
                self.metrics = Some(Sample { at: now, value: m });
            }
            (CommandKind::CallHook(call), CommandResult::Hook(v)) => {
                self.hook_verdicts
                    .insert(call.name.clone(), Sample { at: now, value: v });
            }
            _ => {}
        }
    }

    fn record_service(&mut self, s: ServiceStatus, now: Timestamp) {
        match self.services.get_mut(&s.service) {
            Some(sample) => *sample = Sample { at: now, value: s },
            None => {
                let name = s.service.clone();
                self.services.insert(name, Sample { at: now, value: s });
            }
        }
    }

    fn record_listener(
        &mut self,
        spec: &DeploymentSpec,
        l: &ListenerRef,
        state: ListenerState,
        now: Timestamp,
    ) {
        let sample = Some(Sample {
            at: now,
            value: state,
        });
        if l == &spec.listener {
            self.prod_listener = sample;
        } else if Some(l) == spec.test_listener.as_ref() {
            self.test_listener = sample;
        }
    }

    /// Green's task set as last observed: by ARN once known, else by our external id.
    pub(crate) fn green_task_set_status(
        &self,
        spec: &DeploymentSpec,
        sides: &Sides,
        external_id: &str,
    ) -> Option<&TaskSetStatus> {
        let service = self.services.get(sides.green_service(spec))?;
        service
            .value
            .task_sets
            .iter()
            .find(|ts| match &self.green_task_set {
                Some(arn) => &ts.arn == arn,
                None => ts.external_id.as_deref() == Some(external_id),
            })
    }

    pub(crate) fn green_health(
        &self,
        spec: &DeploymentSpec,
        sides: &Sides,
    ) -> Option<&Sample<TargetHealth>> {
        self.target_health.get(sides.green_tg(spec))
    }
}

/// Percent weights these forwards give blue and green.
fn percent_of(spec: &DeploymentSpec, sides: &Sides, weights: &[TargetWeight]) -> Option<Weights> {
    let state = ListenerState {
        forwards: weights.to_vec(),
    };
    weights_from(&state, sides.blue_tg(spec), sides.green_tg(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, u32)]) -> ListenerState {
        ListenerState {
            forwards: pairs
                .iter()
                .map(|(tg, w)| TargetWeight {
                    target_group: Name::from(*tg),
                    weight: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn weights_are_read_as_percentages_of_the_total() {
        assert_eq!(
            weights_from(&state(&[("b", 1)]), "b", "g"),
            Some(Weights::ALL_BLUE)
        );
        assert_eq!(
            weights_from(&state(&[("b", 900), ("g", 100)]), "b", "g"),
            Some(Weights::green(10))
        );
        assert_eq!(
            weights_from(&state(&[("b", 0), ("g", 5)]), "b", "g"),
            Some(Weights::ALL_GREEN)
        );
    }

    #[test]
    fn forwards_to_a_third_group_or_nowhere_are_not_ours() {
        assert_eq!(
            weights_from(&state(&[("b", 50), ("x", 50)]), "b", "g"),
            None
        );
        assert_eq!(weights_from(&state(&[]), "b", "g"), None);
        assert_eq!(weights_from(&state(&[("b", 0), ("g", 0)]), "b", "g"), None);
    }

    #[test]
    fn holds_compares_weights_per_group_regardless_of_order() {
        let want = forwards(&"b".into(), &"g".into(), Weights::green(10));
        assert!(holds(&state(&[("g", 10), ("b", 90)]), &want));
        assert!(!holds(&state(&[("g", 20), ("b", 80)]), &want));
        assert!(!holds(&state(&[("g", 10), ("b", 90), ("x", 1)]), &want));
    }
}
