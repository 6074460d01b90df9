//! What must always hold, checked at the end of every `handle` and every decision, in
//! release builds too. A violation fails the deployment with the reason; it never
//! continues silently.

use super::Deployment;
use super::exec::IN_FLIGHT_MAX;
use super::phase::Phase;
use crate::command::Weights;

/// The first violated invariant, if any.
pub(crate) fn violated(d: &Deployment) -> Option<String> {
    let k = &d.knowledge;
    let w = k.prod_weights;
    if u16::from(w.blue) + u16::from(w.green) != 100 {
        return Some(format!(
            "production weights {}/{} do not sum to 100",
            w.blue, w.green
        ));
    }
    if w.green > 0 && k.green_healthy_at.is_none() {
        return Some("green has production weight but never passed health-check".into());
    }
    let inner = match &d.phase {
        Phase::Paused(p) => &*p.inner,
        other => other,
    };
    if w.green > 0
        && matches!(
            inner,
            Phase::Preflight(_)
                | Phase::CreateGreen(_)
                | Phase::Deploy(_)
                | Phase::HealthCheck(_)
                | Phase::TestTraffic(_)
                | Phase::Approval(_)
        )
    {
        return Some(format!(
            "green has production weight {} % before shift",
            w.green
        ));
    }
    if k.blue_removal_at.is_some()
        && w != Weights::ALL_GREEN
        && !matches!(d.phase, Phase::Failed { .. })
    {
        return Some("blue's removal began while blue still had production weight".into());
    }
    if d.exec.in_flight.len() > IN_FLIGHT_MAX {
        return Some(format!(
            "{} commands in flight (max {IN_FLIGHT_MAX})",
            d.exec.in_flight.len()
        ));
    }
    if d.exec.writes_in_flight() > 1 {
        return Some("two writes in flight at once: their order at AWS would be undefined".into());
    }
    if d.phase.is_terminal() && (!d.exec.in_flight.is_empty() || !d.exec.retries.is_empty()) {
        return Some("a finished deployment still has commands out".into());
    }
    match &d.phase {
        Phase::Completed { .. } if w != Weights::ALL_GREEN || k.blue_removal_at.is_none() => {
            Some("completed without green at 100 % and blue removed".into())
        }
        Phase::RolledBack { .. } if w != Weights::ALL_BLUE => {
            Some("rolled back without blue at 100 %".into())
        }
        _ if d.history.len() > super::HISTORY_MAX => Some("history over its bound".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Every invariant, violated on purpose and held at its boundary: the phases never
    //! break them (that is the point), so only a hand-made state shows each one firing.
    use super::*;
    use crate::command::{Command, CommandKind, Observe};
    use crate::ids::{CommandId, DeploymentId};
    use crate::io::{PhaseName, Reason, ReasonKind, Transition};
    use crate::machine::bake::Bake;
    use crate::machine::deploy::Deploy;
    use crate::machine::exec::{InFlight, Retry, Role};
    use crate::plan::example_spec;
    use crate::time::Timestamp;

    const T: Timestamp = Timestamp::from_millis(1_000_000);

    fn at_rest(phase: Phase, w: Weights) -> Deployment {
        let mut d = Deployment::new(DeploymentId::new("web-1").unwrap(), example_spec(), T);
        d.phase = phase;
        d.knowledge.prod_weights = w;
        if w.green > 0 {
            d.knowledge.green_healthy_at = Some(T);
        }
        d
    }

    fn bake() -> Phase {
        Phase::Bake(Bake::new(T))
    }

    fn deploy() -> Phase {
        Phase::Deploy(Deploy::new(T, T.plus_ms(60_000)))
    }

    fn completed() -> Phase {
        Phase::Completed { at: T }
    }

    fn in_flight(d: &mut Deployment, n: usize, write: bool) {
        for i in 0..n {
            let kind = if write {
                CommandKind::ScaleEnvironment {
                    cluster: "prod".into(),
                    service: "web-b".into(),
                    desired_count: 3,
                }
            } else {
                CommandKind::Observe(Observe::TargetHealth {
                    target_group: "tg".into(),
                })
            };
            d.exec.in_flight.push(InFlight {
                command: std::sync::Arc::new(Command {
                    id: CommandId::numbered(&d.id, "c", i as u64, ""),
                    attempt: 1,
                    kind,
                }),
                issued_at: T,
                deadline: T.plus_ms(1_000),
                role: Role::Plain,
            });
        }
    }

    fn says(d: &Deployment, words: &str) {
        let v = violated(d).unwrap_or_else(|| panic!("expected a violation with {words:?}"));
        assert!(v.contains(words), "{words:?} not in {v:?}");
    }

    #[test]
    fn production_weights_must_sum_to_100_and_green_needs_a_passed_health_check() {
        let mut d = at_rest(bake(), Weights::green(10));
        assert_eq!(violated(&d), None);
        d.knowledge.prod_weights = Weights {
            blue: 50,
            green: 40,
        };
        says(&d, "do not sum to 100");
        d.knowledge.prod_weights = Weights::green(10);
        d.knowledge.green_healthy_at = None;
        says(&d, "never passed health-check");
        d.knowledge.prod_weights = Weights::ALL_BLUE;
        assert_eq!(violated(&d), None, "all blue needs no health-check");
    }

    #[test]
    fn green_has_no_production_weight_before_the_shift() {
        assert_eq!(violated(&at_rest(deploy(), Weights::ALL_BLUE)), None);
        says(&at_rest(deploy(), Weights::green(1)), "before shift");
        assert_eq!(violated(&at_rest(bake(), Weights::green(1))), None);
    }

    #[test]
    fn blues_removal_begins_only_with_green_at_100() {
        let mut d = at_rest(bake(), Weights::green(90));
        d.knowledge.blue_removal_at = Some(T);
        says(&d, "blue's removal began");
        d.knowledge.prod_weights = Weights::ALL_GREEN;
        assert_eq!(violated(&d), None);
        // A deployment that failed may have stopped anywhere: it says so itself.
        let mut failed = at_rest(
            Phase::Failed {
                at: T,
                reason: Reason::new(ReasonKind::Invariant, "x"),
                action_required: "look".into(),
            },
            Weights::green(90),
        );
        failed.knowledge.blue_removal_at = Some(T);
        assert_eq!(violated(&failed), None);
    }

    #[test]
    fn at_most_eight_commands_and_one_write_are_in_flight() {
        let mut d = at_rest(bake(), Weights::ALL_GREEN);
        in_flight(&mut d, IN_FLIGHT_MAX, false);
        assert_eq!(violated(&d), None, "eight is the bound, not past it");
        in_flight(&mut d, 1, false);
        says(&d, "commands in flight (max 8)");
        let mut d = at_rest(bake(), Weights::ALL_GREEN);
        in_flight(&mut d, 1, true);
        assert_eq!(violated(&d), None);
        in_flight(&mut d, 1, true);
        says(&d, "two writes in flight");
    }

    #[test]
    fn a_finished_deployment_has_nothing_out_and_its_outcome_matches_the_listener() {
        let mut done = at_rest(completed(), Weights::ALL_GREEN);
        done.knowledge.blue_removal_at = Some(T);
        assert_eq!(violated(&done), None);
        let mut out = done.clone();
        in_flight(&mut out, 1, false);
        says(&out, "still has commands out");
        let mut retrying = done.clone();
        let mut probe = done.clone();
        in_flight(&mut probe, 1, false);
        retrying.exec.retries.push(Retry {
            command: (*probe.exec.in_flight[0].command).clone(),
            at: T,
            role: Role::Plain,
        });
        says(&retrying, "still has commands out");
        // Not finished: commands out are normal.
        let mut running = at_rest(bake(), Weights::ALL_GREEN);
        in_flight(&mut running, 1, false);
        assert_eq!(violated(&running), None);

        let mut kept_blue = done.clone();
        kept_blue.knowledge.blue_removal_at = None;
        says(
            &kept_blue,
            "completed without green at 100 % and blue removed",
        );
        // (Blue removed with green short of 100 % trips the removal invariant first.)
        let mut not_all_green = kept_blue.clone();
        not_all_green.knowledge.prod_weights = Weights::green(99);
        says(&not_all_green, "completed without green at 100 %");

        let rolled_back = |w: Weights| {
            at_rest(
                Phase::RolledBack {
                    at: T,
                    reason: Reason::new(ReasonKind::Alarm, "x"),
                },
                w,
            )
        };
        assert_eq!(violated(&rolled_back(Weights::ALL_BLUE)), None);
        says(
            &rolled_back(Weights::green(1)),
            "rolled back without blue at 100 %",
        );
    }

    #[test]
    fn the_history_is_bounded() {
        let mut d = at_rest(bake(), Weights::ALL_GREEN);
        let t = Transition {
            at: T,
            from: PhaseName::Shift,
            to: PhaseName::Bake,
            reason: String::new(),
        };
        d.history = vec![t.clone(); crate::machine::HISTORY_MAX];
        assert_eq!(violated(&d), None);
        d.history.push(t);
        says(&d, "history over its bound");
    }
}
