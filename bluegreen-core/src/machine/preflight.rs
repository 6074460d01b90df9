//! Preflight: check the resources, then read which side is live from the listener.
//!
//! Nothing is written here. A listener that is not at rest (e.g. 90/10 left behind by
//! something else), forwards elsewhere, or an environment that cannot be rolled back to
//! ends the deployment as `Rejected` — nothing changed, nothing to undo.

use serde::{Deserialize, Serialize};

use super::create_green::CreateGreen;
use super::exec::PreflightCx;
use super::knowledge::Sides;
use super::phase::{Phase, Step};
use crate::command::{CommandKind, ListenerState, Observe, Preflight as PreflightCheck};
use crate::io::{Reason, ReasonKind};
use crate::name::Name;
use crate::spec::EnvironmentModel;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub stage: PreflightStage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreflightStage {
    Start,
    /// The resource check is out.
    Checking,
    /// Listener, services and alarms are being read.
    Observing,
}

impl Preflight {
    pub fn new() -> Self {
        Preflight {
            stage: PreflightStage::Start,
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut PreflightCx<'_>) -> Step {
        let spec = cx.spec;
        match self.stage {
            PreflightStage::Start => {
                let services = match &spec.environment {
                    EnvironmentModel::ServicePair { services } => services.to_vec(),
                    EnvironmentModel::TaskSet { service } => vec![service.clone()],
                };
                cx.issue(
                    "preflight",
                    CommandKind::Preflight(Box::new(PreflightCheck {
                        cluster: spec.cluster.clone(),
                        mode: spec.mode(),
                        services,
                        target_groups: spec.target_groups.clone(),
                        listener: spec.listener.clone(),
                        test_listener: spec.test_listener.clone(),
                        container: spec.container.clone(),
                    })),
                );
                self.stage = PreflightStage::Checking;
                Step::Issued
            }
            PreflightStage::Checking => {
                cx.issue(
                    "preflight-listener",
                    CommandKind::Observe(Observe::Listener(spec.listener.clone())),
                );
                if let Some(test) = &spec.test_listener {
                    cx.issue(
                        "preflight-test-listener",
                        CommandKind::Observe(Observe::Listener(test.clone())),
                    );
                }
                let services: Vec<&Name> = match &spec.environment {
                    EnvironmentModel::ServicePair { services } => services.iter().collect(),
                    EnvironmentModel::TaskSet { service } => vec![service],
                };
                for (i, service) in services.into_iter().enumerate() {
                    cx.issue(
                        &format!("preflight-service-{i}"),
                        CommandKind::Observe(Observe::Service {
                            cluster: spec.cluster.clone(),
                            service: service.clone(),
                            failures: None,
                            also: None,
                        }),
                    );
                }
                if !spec.alarms.is_empty() {
                    cx.issue(
                        "preflight-alarms",
                        CommandKind::Observe(Observe::Alarms {
                            names: spec.alarms.clone(),
                        }),
                    );
                }
                self.stage = PreflightStage::Observing;
                Step::Issued
            }
            PreflightStage::Observing => match resolve_sides(cx) {
                Ok(sides) => {
                    let why = format!(
                        "live side is slot {} ({}); green is slot {} ({}), {} task(s)",
                        ["a", "b"][sides.blue],
                        short(&spec.target_groups[sides.blue]),
                        ["a", "b"][sides.green()],
                        short(&spec.target_groups[sides.green()]),
                        sides.desired_count
                    );
                    *cx.found = Some(sides);
                    let next = CreateGreen::new(cx.now, cx.spec);
                    Step::Goto(Phase::CreateGreen(next), why)
                }
                Err(reason) => Step::Goto(
                    Phase::Rejected {
                        at: cx.now,
                        reason: reason.clone(),
                    },
                    reason.to_string(),
                ),
            },
        }
    }
}

impl Default for Preflight {
    fn default() -> Self {
        Self::new()
    }
}

/// An ARN's short name (see [`crate::arn`]), for messages.
pub(crate) fn short(arn: &str) -> &str {
    crate::arn::short_name(arn)
}

fn reject(kind: ReasonKind, detail: String) -> Reason {
    Reason::new(kind, detail)
}

/// Which slot holds 100 % of the listener.
fn live_slot(state: &ListenerState, tgs: &[Name; 2]) -> Result<usize, Reason> {
    let total = state.total_weight();
    if total == 0 {
        return Err(reject(
            ReasonKind::ListenerNotAtRest,
            "the production listener does not forward anywhere (no forward action, or all weights 0)".into(),
        ));
    }
    let (w0, w1) = (state.weight_of(&tgs[0]), state.weight_of(&tgs[1]));
    if w0 + w1 != total {
        let others: Vec<&str> = state
            .forwards
            .iter()
            .filter(|f| f.weight > 0 && !tgs.contains(&f.target_group))
            .map(|f| short(&f.target_group))
            .collect();
        return Err(reject(
            ReasonKind::ListenerNotAtRest,
            format!(
                "the production listener forwards to target groups outside this app: {}",
                others.join(", ")
            ),
        ));
    }
    match (w0 == total, w1 == total) {
        (true, _) => Ok(0),
        (_, true) => Ok(1),
        _ => Err(reject(
            ReasonKind::ListenerNotAtRest,
            format!(
                "the production listener is not at rest: {} has weight {w0}, {} has weight {w1}; \
                 finish or undo that change first",
                short(&tgs[0]),
                short(&tgs[1])
            ),
        )),
    }
}

fn resolve_sides(cx: &PreflightCx<'_>) -> Result<Sides, Reason> {
    let spec = cx.spec;
    let k = &*cx.k;
    let prod = k.prod_listener.as_ref().ok_or_else(|| {
        reject(
            ReasonKind::Preflight,
            "the production listener was not read".into(),
        )
    })?;
    let blue = live_slot(&prod.value, &spec.target_groups)?;
    let green_tg = &spec.target_groups[1 - blue];

    let test_listener_original = match &spec.test_listener {
        None => None,
        Some(_) => {
            let test = k.test_listener.as_ref().ok_or_else(|| {
                reject(
                    ReasonKind::Preflight,
                    "the test listener was not read".into(),
                )
            })?;
            if let Some(f) = test
                .value
                .forwards
                .iter()
                .find(|f| f.weight > 0 && !spec.target_groups.contains(&f.target_group))
            {
                return Err(reject(
                    ReasonKind::ListenerNotAtRest,
                    format!(
                        "the test listener forwards to {}, which is neither of this app's target groups",
                        short(&f.target_group)
                    ),
                ));
            }
            Some(test.value.clone())
        }
    };

    if let Some(alarms) = &k.alarms
        && !alarms.value.missing.is_empty()
    {
        return Err(reject(
            ReasonKind::Preflight,
            format!("alarm(s) not found: {}", alarms.value.missing.join(", ")),
        ));
    }

    let (desired_count, blue_task_definition, blue_task_set) = match &spec.environment {
        EnvironmentModel::ServicePair { services } => {
            let blue_svc = k.services.get(&services[blue]).ok_or_else(|| {
                reject(
                    ReasonKind::Preflight,
                    format!("service {} was not read", services[blue]),
                )
            })?;
            let s = &blue_svc.value;
            if s.desired_count == 0 || s.task_definition.is_empty() {
                return Err(reject(
                    ReasonKind::Preflight,
                    format!(
                        "live service {} has desired count 0: there would be nothing to roll back to",
                        services[blue]
                    ),
                ));
            }
            (
                spec.desired_count.unwrap_or(s.desired_count),
                s.task_definition.clone(),
                None,
            )
        }
        EnvironmentModel::TaskSet { service } => {
            let svc = k.services.get(service).ok_or_else(|| {
                reject(
                    ReasonKind::Preflight,
                    format!("service {service} was not read"),
                )
            })?;
            let s = &svc.value;
            let serving = |ts: &&crate::command::TaskSetStatus| {
                ts.target_groups.contains(&spec.target_groups[blue]) && ts.status != "DRAINING"
            };
            let blue_ts = s
                .task_sets
                .iter()
                .filter(serving)
                .find(|ts| ts.status == "PRIMARY")
                .or_else(|| s.task_sets.iter().find(serving))
                .ok_or_else(|| {
                    reject(
                        ReasonKind::Preflight,
                        format!(
                            "no task set of {service} serves the live target group {}",
                            short(&spec.target_groups[blue])
                        ),
                    )
                })?;
            if let Some(other) = s
                .task_sets
                .iter()
                .find(|ts| ts.arn != blue_ts.arn && ts.status != "DRAINING")
            {
                return Err(reject(
                    ReasonKind::Preflight,
                    format!(
                        "task set {} (external id {}) on {} is left over from an earlier deployment; delete it first",
                        other.id,
                        other.external_id.as_deref().unwrap_or("none"),
                        other
                            .target_groups
                            .first()
                            .map(|t| short(t))
                            .unwrap_or("no target group")
                    ),
                ));
            }
            if s.desired_count == 0 {
                return Err(reject(
                    ReasonKind::Preflight,
                    format!(
                        "service {service} has desired count 0: there would be nothing to roll back to"
                    ),
                ));
            }
            (
                s.desired_count,
                blue_ts.task_definition.clone(),
                Some(blue_ts.arn.clone()),
            )
        }
    };
    debug_assert!(&spec.target_groups[1 - blue] == green_tg);
    Ok(Sides {
        blue,
        desired_count,
        blue_task_definition,
        blue_task_set,
        test_listener_original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::TargetWeight;

    fn st(p: &[(&str, u32)]) -> ListenerState {
        ListenerState {
            forwards: p
                .iter()
                .map(|(t, w)| TargetWeight {
                    target_group: Name::from(*t),
                    weight: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn the_live_slot_is_whichever_group_has_all_the_weight() {
        let tgs = [Name::from("a"), Name::from("b")];
        assert_eq!(live_slot(&st(&[("a", 1)]), &tgs), Ok(0));
        assert_eq!(live_slot(&st(&[("a", 0), ("b", 100)]), &tgs), Ok(1));
        let e = live_slot(&st(&[("a", 90), ("b", 10)]), &tgs).unwrap_err();
        assert_eq!(e.kind, ReasonKind::ListenerNotAtRest);
        assert!(e.detail.contains("not at rest"), "{}", e.detail);
        let e = live_slot(&st(&[("a", 50), ("x", 50), ("y", 0)]), &tgs).unwrap_err();
        assert!(e.detail.contains("outside this app"));
        assert!(
            e.detail.ends_with(": x"),
            "names only the foreign group: {}",
            e.detail
        );
        assert!(live_slot(&st(&[]), &tgs).is_err());
    }

    #[test]
    fn short_names_come_from_arns() {
        assert_eq!(
            short("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-a/abc"),
            "web-a"
        );
        assert_eq!(short("web"), "web");
    }
}
