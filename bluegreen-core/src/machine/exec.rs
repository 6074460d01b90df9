//! Execution bookkeeping: the outbox, commands in flight, scheduled retries — and the
//! emission guards every command passes on its way out.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::name::Name;
use serde::{Deserialize, Serialize};

use super::knowledge::{Knowledge, Sides};
use super::reasons::GuardRefusal;
use crate::command::{Command, CommandKind, Weights};
use crate::ids::{CommandId, DeploymentId};
use crate::io::{Notice, Output};
use crate::spec::{DeploymentSpec, EnvironmentModel};
use crate::time::Timestamp;

/// Most commands in flight at once (one observation batch is at most 5).
pub const IN_FLIGHT_MAX: usize = 8;
/// Most outputs queued before the caller drains them.
pub const OUTBOX_MAX: usize = 64;

/// Why a command was sent, beyond its own effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sent for its own sake.
    Plain,
    /// An observation resolving an ambiguous write: did it take effect?
    Resolves(Box<Command>),
    /// A fresh look at green's targets before re-sending a write that moves traffic onto
    /// green: an observation from before a failed attempt may be minutes old.
    Prechecks(Box<Command>),
}

impl Role {
    /// The data-free shape the error policy reads.
    pub fn purpose(&self) -> super::error_policy::Purpose {
        use super::error_policy::Purpose;
        match self {
            Role::Plain => Purpose::Plain,
            Role::Resolves(_) => Purpose::Resolves,
            Role::Prechecks(_) => Purpose::Prechecks,
        }
    }
}

/// A command handed out and not yet answered. The command is shared with the
/// [`Output::Command`] that handed it out: one allocation per command, and moving it
/// through the outbox, this table and the executor moves a pointer, not ~150 bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub command: Arc<Command>,
    pub issued_at: Timestamp,
    pub deadline: Timestamp,
    pub role: Role,
}

/// A command to send again later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub command: Command,
    pub at: Timestamp,
    pub role: Role,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    pub outbox: VecDeque<Output>,
    /// In send order; at most `IN_FLIGHT_MAX` (a small vector beats a map here).
    pub in_flight: Vec<InFlight>,
    /// In scheduling order; one per command id.
    pub retries: Vec<Retry>,
    /// The phase asked not to be consulted before this time.
    pub wait_until: Option<Timestamp>,
    /// An emission guard refused a command: the machine fails with this reason.
    pub violation: Option<String>,
    /// Commands sent, retries included.
    pub commands_sent: u64,
    /// Lower bound of AWS API calls those commands made.
    pub aws_calls_min: u64,
    /// When a write moving traffic onto green (or taking blue away) was last sent: a
    /// re-send needs a green observation newer than this.
    pub last_attempt_at: Option<Timestamp>,
}

impl Exec {
    pub(crate) fn send(&mut self, command: Command, now: Timestamp, command_ms: u64, role: Role) {
        self.send_shared(Arc::new(command), now, command_ms, role);
    }

    /// Send a command already shared (one that was in flight, sent again as it is).
    pub(crate) fn send_shared(
        &mut self,
        command: Arc<Command>,
        now: Timestamp,
        command_ms: u64,
        role: Role,
    ) {
        self.commands_sent += 1;
        self.aws_calls_min += u64::from(command.kind.aws_calls_min());
        // A re-send replaces the earlier attempt of the same step.
        self.in_flight.retain(|f| f.command.id != command.id);
        self.in_flight.push(InFlight {
            command: Arc::clone(&command),
            issued_at: now,
            deadline: now.plus_ms(command_ms),
            role,
        });
        self.push(Output::Command(command));
    }

    pub(crate) fn push(&mut self, out: Output) {
        // Notices beyond the bound are dropped oldest-first; commands never are (the
        // bound is far above one decision's output, so this is a safety valve).
        if self.outbox.len() >= OUTBOX_MAX
            && let Some(pos) = self
                .outbox
                .iter()
                .position(|o| matches!(o, Output::Notice(_)))
        {
            self.outbox.remove(pos);
        }
        self.outbox.push_back(out);
    }

    pub(crate) fn notice(&mut self, n: Notice) {
        self.push(Output::Notice(n));
    }

    /// Take the command in flight with this id.
    pub(crate) fn take_in_flight(&mut self, id: &CommandId) -> Option<InFlight> {
        let pos = self.in_flight.iter().position(|f| &f.command.id == id)?;
        Some(self.in_flight.remove(pos))
    }

    /// Schedule a retry (replacing any earlier one of the same step).
    pub(crate) fn schedule(&mut self, retry: Retry) {
        self.retries.retain(|r| r.command.id != retry.command.id);
        self.retries.push(retry);
    }

    pub(crate) fn writes_in_flight(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|f| f.command.kind.is_write())
            .count()
    }
}

/// What preflight sees while deciding: no side is known yet, so it may only read, and it
/// hands the sides it reads back through `found`.
pub(crate) struct PreflightCx<'a> {
    pub id: &'a DeploymentId,
    pub spec: &'a DeploymentSpec,
    pub now: Timestamp,
    pub k: &'a mut Knowledge,
    pub exec: &'a mut Exec,
    pub found: &'a mut Option<Sides>,
}

impl PreflightCx<'_> {
    /// Send a command for logical step `step` (first attempt).
    pub fn issue(&mut self, step: &str, kind: CommandKind) {
        let id = CommandId::new(self.id, step);
        emit(self.spec, self.k, None, self.exec, self.now, id, kind);
    }
}

/// What a phase after preflight sees while deciding: the sides preflight read are there
/// by construction (the driver decides no later phase without them).
pub(crate) struct Cx<'a> {
    pub id: &'a DeploymentId,
    pub spec: &'a DeploymentSpec,
    pub now: Timestamp,
    pub k: &'a mut Knowledge,
    pub exec: &'a mut Exec,
    pub sides: &'a Sides,
}

impl Cx<'_> {
    /// Send a command for logical step `step` (first attempt).
    pub fn issue(&mut self, step: &str, kind: CommandKind) {
        let id = CommandId::new(self.id, step);
        self.issue_as(id, kind);
    }

    /// Send a command under a prepared id (first attempt).
    pub fn issue_as(&mut self, id: CommandId, kind: CommandKind) {
        emit(
            self.spec,
            self.k,
            Some(self.sides),
            self.exec,
            self.now,
            id,
            kind,
        );
    }

    pub fn seed(&self) -> u64 {
        self.id.seed()
    }

    pub fn sides(&self) -> &Sides {
        self.sides
    }

    /// Green's size now: its size at preflight, or blue's larger count once green
    /// followed a scale-out. Health and steadiness are judged against it.
    pub fn green_desired(&self) -> u32 {
        self.k.green_desired.map_or(self.sides.desired_count, |n| {
            n.max(self.sides.desired_count)
        })
    }

    pub fn blue_tg(&self) -> &Name {
        &self.spec.target_groups[self.sides.blue]
    }

    pub fn green_tg(&self) -> &Name {
        &self.spec.target_groups[self.sides.green()]
    }

    /// Blue's service (service pair) or the service holding blue's task set.
    pub fn blue_service(&self) -> &Name {
        self.sides.blue_service(self.spec)
    }

    /// Green's service (service pair) or the service holding green's task set.
    pub fn green_service(&self) -> &Name {
        self.sides.green_service(self.spec)
    }
}

/// Send a command a phase decided on, past the emission guards.
fn emit(
    spec: &DeploymentSpec,
    k: &Knowledge,
    sides: Option<&Sides>,
    exec: &mut Exec,
    now: Timestamp,
    id: CommandId,
    kind: CommandKind,
) {
    if let Err(why) = guard(spec, k, sides, now, &kind) {
        if exec.violation.is_none() {
            exec.violation = Some(format!("refused to send {}: {why}", kind.name()));
        }
        return;
    }
    if needs_fresh_look(spec, sides, &kind) {
        exec.last_attempt_at = Some(now);
    }
    let command = Command {
        id,
        attempt: 1,
        kind,
    };
    exec.send(command, now, spec.timeouts.command_ms, Role::Plain);
}

/// Does this write take blue's capacity away (scale blue's service to 0, delete blue's
/// task set)?
pub(crate) fn removes_blue(
    spec: &DeploymentSpec,
    sides: Option<&Sides>,
    kind: &CommandKind,
) -> bool {
    let Some(sides) = sides else {
        return false;
    };
    match kind {
        CommandKind::ScaleEnvironment { service, .. } => {
            matches!(spec.environment, EnvironmentModel::ServicePair { .. })
                && service.as_str() == sides.blue_service(spec)
        }
        CommandKind::DeleteEnvironment { task_set, .. } => {
            sides.blue_task_set.as_ref() == Some(task_set)
        }
        _ => false,
    }
}

/// Writes whose re-send needs a fresh look at green first: those moving traffic onto
/// it, and those taking away blue, the only remedy if green has gone dark meanwhile.
pub(crate) fn needs_fresh_look(
    spec: &DeploymentSpec,
    sides: Option<&Sides>,
    kind: &CommandKind,
) -> bool {
    raises_green(spec, sides, kind) || removes_blue(spec, sides, kind)
}

/// Does this write move traffic onto green (any listener)?
pub(crate) fn raises_green(
    spec: &DeploymentSpec,
    sides: Option<&Sides>,
    kind: &CommandKind,
) -> bool {
    let (Some(sides), CommandKind::SetListenerWeights { weights, .. }) = (sides, kind) else {
        return false;
    };
    let green_tg = &spec.target_groups[sides.green()];
    weights
        .iter()
        .any(|w| &w.target_group == green_tg && w.weight > 0)
}

/// Emission guards: checks on every outgoing command that must hold whatever the phase
/// logic says. A refusal is a bug in the machine, and fails the deployment loudly rather
/// than sending traffic to nowhere or removing the live side.
pub(crate) fn guard(
    spec: &DeploymentSpec,
    k: &Knowledge,
    sides: Option<&Sides>,
    now: Timestamp,
    kind: &CommandKind,
) -> Result<(), GuardRefusal> {
    let Some(sides) = sides else {
        return if kind.is_write() {
            Err(GuardRefusal::SidesUnknown)
        } else {
            Ok(())
        };
    };
    let blue_tg = &spec.target_groups[sides.blue];
    let green_tg = &spec.target_groups[sides.green()];
    match kind {
        CommandKind::SetListenerWeights { weights, .. } => {
            let to_green: u32 = weights
                .iter()
                .filter(|w| &w.target_group == green_tg)
                .map(|w| w.weight)
                .sum();
            if weights
                .iter()
                .any(|w| &w.target_group != green_tg && &w.target_group != blue_tg)
            {
                return Err(GuardRefusal::ForeignTargetGroup);
            }
            if to_green > 0 {
                if k.green_healthy_at.is_none() {
                    return Err(GuardRefusal::GreenNotYetHealthy);
                }
                let fresh = k
                    .green_health(spec, sides)
                    .filter(|s| s.value.healthy > 0 && k.prod_written_at.is_none_or(|w| s.at >= w));
                if fresh.is_none() {
                    return Err(GuardRefusal::GreenHealthStale);
                }
            }
            Ok(())
        }
        CommandKind::ScaleEnvironment {
            service,
            desired_count,
            ..
        } => {
            if matches!(spec.environment, EnvironmentModel::ServicePair { .. })
                && service.as_str() == sides.blue_service(spec)
            {
                blue_removal_allowed(spec, k, now)?;
                if *desired_count != 0 {
                    return Err(GuardRefusal::BlueScaledUp);
                }
            }
            Ok(())
        }
        CommandKind::DeleteEnvironment { task_set, .. } => {
            if Some(task_set) == sides.blue_task_set.as_ref() {
                blue_removal_allowed(spec, k, now)?;
            }
            Ok(())
        }
        CommandKind::EnsureGreen(crate::command::EnsureGreen::Service { service, .. }) => {
            if service.as_str() == sides.blue_service(spec) {
                return Err(GuardRefusal::EnsureGreenOnBlue);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn blue_removal_allowed(
    spec: &DeploymentSpec,
    k: &Knowledge,
    now: Timestamp,
) -> Result<(), GuardRefusal> {
    if k.prod_weights != Weights::ALL_GREEN {
        return Err(GuardRefusal::BlueStillLive {
            blue_percent: k.prod_weights.blue,
        });
    }
    if spec.test_listener.is_some() && k.test_weights != Some(Weights::ALL_GREEN) {
        return Err(GuardRefusal::BlueStillTested);
    }
    if k.prod_written_at
        .is_none_or(|w| w.plus_ms(spec.drain_ms) > now)
    {
        return Err(GuardRefusal::DrainTimeNotPassed);
    }
    match k.blue_removal_at {
        Some(at) if at <= now => Ok(()),
        _ => Err(GuardRefusal::DrainWaitNotOver),
    }
}

#[cfg(test)]
mod tests {
    //! The emission guards, one rule at a time: the phases never trip them (so the
    //! machine's own tests cannot), but each is the last line before traffic goes to
    //! nowhere or the live side is removed.
    use super::*;
    use crate::command::{EnsureGreen, Observe, TargetHealth, TargetWeight};
    use crate::machine::knowledge::Sample;
    use crate::plan::example_draft;
    use crate::spec::ListenerRef;

    const NOW_MS: u64 = 1_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// The example app with slot 0 (web-a) blue.
    fn setup(f: impl FnOnce(&mut crate::spec::SpecDraft)) -> (DeploymentSpec, Sides) {
        let mut d = example_draft();
        f(&mut d);
        let spec = DeploymentSpec::new(d).expect("valid spec");
        let sides = Sides {
            blue: 0,
            desired_count: 2,
            blue_task_definition: "td:1".into(),
            blue_task_set: None,
            test_listener_original: None,
        };
        (spec, sides)
    }

    fn weights(spec: &DeploymentSpec, blue: u32, green: u32) -> CommandKind {
        CommandKind::SetListenerWeights {
            listener: spec.listener.clone(),
            weights: vec![
                TargetWeight {
                    target_group: spec.target_groups[0].clone(),
                    weight: blue,
                },
                TargetWeight {
                    target_group: spec.target_groups[1].clone(),
                    weight: green,
                },
            ],
        }
    }

    fn green_seen(spec: &DeploymentSpec, k: &mut Knowledge, healthy: u32, seen_ms: u64) {
        k.target_health.insert(
            spec.target_groups[1].clone(),
            Sample {
                at: at(seen_ms),
                value: TargetHealth {
                    healthy,
                    ..TargetHealth::default()
                },
            },
        );
    }

    #[test]
    fn no_write_goes_before_preflight_read_the_sides_but_reads_do() {
        let (spec, _) = setup(|_| {});
        let k = Knowledge::default();
        let read = CommandKind::Observe(Observe::TargetHealth {
            target_group: spec.target_groups[0].clone(),
        });
        assert_eq!(guard(&spec, &k, None, at(NOW_MS), &read), Ok(()));
        assert_eq!(
            guard(&spec, &k, None, at(NOW_MS), &weights(&spec, 100, 0)),
            Err(GuardRefusal::SidesUnknown)
        );
    }

    #[test]
    fn weight_onto_green_needs_a_passed_health_check_and_a_fresh_healthy_look() {
        let (spec, sides) = setup(|_| {});
        let mut k = Knowledge::default();
        let now = at(NOW_MS);
        let g = |k: &Knowledge, green: u32| {
            guard(
                &spec,
                k,
                Some(&sides),
                now,
                &weights(&spec, 100 - green, green),
            )
        };
        // All on blue needs nothing from green.
        assert_eq!(g(&k, 0), Ok(()));
        assert_eq!(g(&k, 1), Err(GuardRefusal::GreenNotYetHealthy));
        k.green_healthy_at = Some(at(NOW_MS - 10_000));
        assert_eq!(
            g(&k, 10),
            Err(GuardRefusal::GreenHealthStale),
            "no look at all"
        );
        green_seen(&spec, &mut k, 0, NOW_MS - 1_000);
        assert_eq!(
            g(&k, 10),
            Err(GuardRefusal::GreenHealthStale),
            "no healthy target"
        );
        green_seen(&spec, &mut k, 2, NOW_MS - 5_000);
        k.prod_written_at = Some(at(NOW_MS - 4_000));
        assert_eq!(
            g(&k, 50),
            Err(GuardRefusal::GreenHealthStale),
            "the look is older than the last write"
        );
        k.prod_written_at = Some(at(NOW_MS - 5_000));
        assert_eq!(
            g(&k, 50),
            Ok(()),
            "a look from the same instant as the write counts"
        );
        k.prod_written_at = None;
        assert_eq!(g(&k, 100), Ok(()));
    }

    #[test]
    fn weights_naming_a_third_target_group_are_refused() {
        let (spec, sides) = setup(|_| {});
        let kind = CommandKind::SetListenerWeights {
            listener: spec.listener.clone(),
            weights: vec![TargetWeight {
                target_group: "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1".into(),
                weight: 100,
            }],
        };
        assert_eq!(
            guard(
                &spec,
                &Knowledge::default(),
                Some(&sides),
                at(NOW_MS),
                &kind
            ),
            Err(GuardRefusal::ForeignTargetGroup)
        );
    }

    /// Knowledge at the end of a good shift: all green, written long ago, drain over.
    fn drained() -> Knowledge {
        Knowledge {
            prod_weights: Weights::ALL_GREEN,
            prod_written_at: Some(at(NOW_MS - 60_000)),
            blue_removal_at: Some(at(NOW_MS)),
            ..Knowledge::default()
        }
    }

    #[test]
    fn blue_scales_to_zero_only_after_production_left_it_and_the_drain_passed() {
        let (spec, sides) = setup(|_| {});
        let scale = |service: &Name, n: u32| CommandKind::ScaleEnvironment {
            cluster: spec.cluster.clone(),
            service: service.clone(),
            desired_count: n,
        };
        let blue = sides.blue_service(&spec).clone();
        let green = sides.green_service(&spec).clone();
        let now = at(NOW_MS);
        let check = |k: &Knowledge, kind: &CommandKind| guard(&spec, k, Some(&sides), now, kind);
        assert_eq!(check(&drained(), &scale(&blue, 0)), Ok(()));
        assert_eq!(
            check(&drained(), &scale(&blue, 1)),
            Err(GuardRefusal::BlueScaledUp)
        );
        // Green is scaled freely.
        assert_eq!(check(&Knowledge::default(), &scale(&green, 3)), Ok(()));
        let live = Knowledge {
            prod_weights: Weights::green(90),
            ..drained()
        };
        assert_eq!(
            check(&live, &scale(&blue, 0)),
            Err(GuardRefusal::BlueStillLive { blue_percent: 10 })
        );
        // The drain time is counted from the last write: exactly drain_ms later is enough.
        let written = |ago_ms: u64| Knowledge {
            prod_written_at: Some(at(NOW_MS - ago_ms)),
            ..drained()
        };
        assert_eq!(check(&written(spec.drain_ms), &scale(&blue, 0)), Ok(()));
        assert_eq!(
            check(&written(spec.drain_ms - 1), &scale(&blue, 0)),
            Err(GuardRefusal::DrainTimeNotPassed)
        );
        let never_written = Knowledge {
            prod_written_at: None,
            ..drained()
        };
        assert_eq!(
            check(&never_written, &scale(&blue, 0)),
            Err(GuardRefusal::DrainTimeNotPassed)
        );
        let waiting = |removal: Option<u64>| Knowledge {
            blue_removal_at: removal.map(at),
            ..drained()
        };
        assert_eq!(
            check(&waiting(None), &scale(&blue, 0)),
            Err(GuardRefusal::DrainWaitNotOver)
        );
        assert_eq!(
            check(&waiting(Some(NOW_MS + 1)), &scale(&blue, 0)),
            Err(GuardRefusal::DrainWaitNotOver)
        );
        assert_eq!(check(&waiting(Some(NOW_MS)), &scale(&blue, 0)), Ok(()));
    }

    #[test]
    fn blue_is_not_removed_while_the_test_listener_may_still_reach_it() {
        let (spec, sides) = setup(|d| {
            d.test_listener = Some(ListenerRef {
                listener_arn: "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/t"
                    .into(),
                rule_arn: None,
            });
            d.test_traffic_ms = 1_000;
        });
        let blue = CommandKind::ScaleEnvironment {
            cluster: spec.cluster.clone(),
            service: sides.blue_service(&spec).clone(),
            desired_count: 0,
        };
        let check = |k: &Knowledge| guard(&spec, k, Some(&sides), at(NOW_MS), &blue);
        assert_eq!(check(&drained()), Err(GuardRefusal::BlueStillTested));
        let tested = Knowledge {
            test_weights: Some(Weights::ALL_GREEN),
            ..drained()
        };
        assert_eq!(check(&tested), Ok(()));
    }

    #[test]
    fn only_blues_task_set_is_guarded_on_delete_and_green_is_never_ensured_on_blue() {
        let (spec, mut sides) = setup(|_| {});
        sides.blue_task_set = Some("arn:ts/blue".into());
        let delete = |ts: &str| CommandKind::DeleteEnvironment {
            cluster: spec.cluster.clone(),
            service: "web".into(),
            task_set: ts.into(),
        };
        let early = Knowledge::default();
        let now = at(NOW_MS);
        assert_eq!(
            guard(&spec, &early, Some(&sides), now, &delete("arn:ts/blue")),
            Err(GuardRefusal::BlueStillLive { blue_percent: 100 })
        );
        assert_eq!(
            guard(&spec, &drained(), Some(&sides), now, &delete("arn:ts/blue")),
            Ok(())
        );
        assert_eq!(
            guard(&spec, &early, Some(&sides), now, &delete("arn:ts/green")),
            Ok(())
        );
        let ensure = |service: &Name| {
            CommandKind::EnsureGreen(EnsureGreen::Service {
                cluster: spec.cluster.clone(),
                service: service.clone(),
                task_definition: "td:2".into(),
                desired_count: 2,
            })
        };
        assert_eq!(
            guard(
                &spec,
                &early,
                Some(&sides),
                now,
                &ensure(sides.blue_service(&spec))
            ),
            Err(GuardRefusal::EnsureGreenOnBlue)
        );
        assert_eq!(
            guard(
                &spec,
                &early,
                Some(&sides),
                now,
                &ensure(sides.green_service(&spec))
            ),
            Ok(())
        );
    }

    #[test]
    fn blue_is_removed_by_scaling_its_service_or_deleting_its_task_set_only() {
        let (spec, sides) = setup(|_| {});
        let scale = |service: &str| CommandKind::ScaleEnvironment {
            cluster: spec.cluster.clone(),
            service: service.into(),
            desired_count: 0,
        };
        let blue = sides.blue_service(&spec).to_string();
        let green = sides.green_service(&spec).to_string();
        assert!(removes_blue(&spec, Some(&sides), &scale(&blue)));
        assert!(!removes_blue(&spec, Some(&sides), &scale(&green)));
        assert!(
            !removes_blue(&spec, None, &scale(&blue)),
            "no sides, no blue"
        );
        let read = CommandKind::Observe(Observe::TargetHealth {
            target_group: spec.target_groups[0].clone(),
        });
        assert!(!removes_blue(&spec, Some(&sides), &read));
        // Task sets: the service is shared; only deleting blue's task set removes blue.
        let (ts_spec, mut ts_sides) = setup(|d| {
            d.environment = crate::spec::EnvironmentModel::TaskSet {
                service: "web".into(),
            }
        });
        ts_sides.blue_task_set = Some("arn:ts/blue".into());
        let delete = |ts: &str| CommandKind::DeleteEnvironment {
            cluster: ts_spec.cluster.clone(),
            service: "web".into(),
            task_set: ts.into(),
        };
        assert!(removes_blue(
            &ts_spec,
            Some(&ts_sides),
            &delete("arn:ts/blue")
        ));
        assert!(!removes_blue(
            &ts_spec,
            Some(&ts_sides),
            &delete("arn:ts/green")
        ));
        assert!(
            !removes_blue(&ts_spec, Some(&ts_sides), &scale("web")),
            "scaling the shared service is not removing blue"
        );
        // A re-send of either kind, or of weight onto green, needs a fresh look first.
        assert!(needs_fresh_look(&spec, Some(&sides), &scale(&blue)));
        assert!(needs_fresh_look(
            &ts_spec,
            Some(&ts_sides),
            &delete("arn:ts/blue")
        ));
        assert!(needs_fresh_look(
            &spec,
            Some(&sides),
            &weights(&spec, 90, 10)
        ));
        assert!(!needs_fresh_look(
            &spec,
            Some(&sides),
            &weights(&spec, 100, 0)
        ));
        assert!(!needs_fresh_look(&spec, Some(&sides), &scale(&green)));
        assert!(!needs_fresh_look(&spec, Some(&sides), &read));
    }

    #[test]
    fn a_retry_replaces_the_earlier_one_of_its_step_and_writes_in_flight_are_counted() {
        let (spec, _) = setup(|_| {});
        let d = DeploymentId::new("web-1").unwrap();
        let cmd = |step: &str, kind: CommandKind| Command {
            id: CommandId::new(&d, step),
            attempt: 1,
            kind,
        };
        let read = CommandKind::Observe(Observe::TargetHealth {
            target_group: spec.target_groups[1].clone(),
        });
        let mut e = Exec::default();
        let retry = |c: Command, ms: u64| Retry {
            command: c,
            at: at(ms),
            role: Role::Plain,
        };
        e.schedule(retry(cmd("a", read.clone()), 1));
        e.schedule(retry(cmd("b", read.clone()), 2));
        e.schedule(retry(cmd("a", read.clone()), 3));
        let kept: Vec<(String, u64)> = e
            .retries
            .iter()
            .map(|r| (r.command.id.to_string(), r.at.as_millis()))
            .collect();
        assert_eq!(
            kept,
            [("web-1/b".to_string(), 2), ("web-1/a".to_string(), 3)],
            "one retry per step, the newest"
        );
        assert_eq!(e.writes_in_flight(), 0);
        e.send(cmd("w", weights(&spec, 100, 0)), at(0), 1_000, Role::Plain);
        e.send(cmd("r", read.clone()), at(0), 1_000, Role::Plain);
        assert_eq!(e.writes_in_flight(), 1);
        e.send(cmd("w2", weights(&spec, 100, 0)), at(0), 1_000, Role::Plain);
        assert_eq!(e.writes_in_flight(), 2);
    }
}
