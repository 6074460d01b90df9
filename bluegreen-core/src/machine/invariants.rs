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
