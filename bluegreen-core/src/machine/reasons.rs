//! Named reasons: why an emission guard refused a command, and why a phase refused an
//! operator request. Each is a variant a test (or a metrics label) can match; `Display`
//! gives the sentence the API and the journal have always shown.

use core::fmt;

use serde::{Deserialize, Serialize};

/// An emission guard's refusal: the machine was about to send a command that would break
/// a safety rule. Always a bug in the machine; the deployment fails loudly with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "guard", rename_all = "kebab-case")]
pub enum GuardRefusal {
    /// A write before preflight read which side is live.
    SidesUnknown,
    /// Listener weights naming a target group outside this app's pair.
    ForeignTargetGroup,
    /// Weight onto green before health-check passed.
    GreenNotYetHealthy,
    /// Weight onto green without a healthy observation since the last listener write.
    GreenHealthStale,
    /// Blue scaled to anything but zero.
    BlueScaledUp,
    /// Ensure-green addressed to blue's service.
    EnsureGreenOnBlue,
    /// Blue removed while it still has production weight (percent).
    BlueStillLive { blue_percent: u8 },
    /// Blue removed while the test listener may still send it traffic.
    BlueStillTested,
    /// Blue removed before the drain time passed since its last weight.
    DrainTimeNotPassed,
    /// Blue removed before drain-blue's wait ended.
    DrainWaitNotOver,
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GuardRefusal as G;
        match self {
            G::SidesUnknown => f.write_str("no write before preflight has read which side is live"),
            G::ForeignTargetGroup => {
                f.write_str("weights name a target group that is neither blue nor green")
            }
            G::GreenNotYetHealthy => f.write_str("green weight > 0 before health-check passed"),
            G::GreenHealthStale => f.write_str(
                "green weight > 0 without a healthy observation of green since the last listener write",
            ),
            G::BlueScaledUp => f.write_str("blue is only ever scaled to zero"),
            G::EnsureGreenOnBlue => f.write_str("ensure-green addressed blue's service"),
            G::BlueStillLive { blue_percent } => {
                write!(f, "blue still has production weight {blue_percent} %")
            }
            G::BlueStillTested => f.write_str("the test listener may still send traffic to blue"),
            G::DrainTimeNotPassed => {
                f.write_str("blue removed before the drain time passed since its last weight")
            }
            G::DrainWaitNotOver => f.write_str("blue removed before the drain wait ended"),
        }
    }
}

/// Why the current phase refuses an operator request (HTTP 409; the text is
/// [`crate::Refused`]'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalReason {
    Over,
    NotPaused,
    AlreadyRollingBack,
    AlreadyPaused,
    /// Pause during blue's removal.
    BlueBeingRemoved,
    /// Abort during blue's removal.
    TooLateToAbort,
    /// Promote while paused.
    PausedResumeFirst,
    /// Promote in a phase with no gate or wait.
    NothingToPromote,
    /// Promote in test traffic while its hooks run.
    TestHooksRunning,
    /// Promote in shift outside a hold.
    NoShiftHold,
    /// Promote in bake while its hooks run.
    BakeHooksRunning,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RefusalReason as R;
        f.write_str(match self {
            R::Over => "the deployment is over",
            R::NotPaused => "not paused",
            R::AlreadyRollingBack => "already rolling back",
            R::AlreadyPaused => "already paused",
            R::BlueBeingRemoved => "blue is being removed; nothing left to hold",
            R::TooLateToAbort => {
                "blue is being removed and green serves 100 %: deploy the previous image to go back"
            }
            R::PausedResumeFirst => "paused: resume first",
            R::NothingToPromote => "no approval gate or wait to end in this phase",
            R::TestHooksRunning => "the test-traffic hooks are still running; nothing to end early",
            R::NoShiftHold => "no shift hold is running; nothing to end early",
            R::BakeHooksRunning => "the after-shift hooks are still running; nothing to end early",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_refusals_keep_the_sentences_operators_have_seen() {
        let rows = [
            (
                GuardRefusal::SidesUnknown,
                "no write before preflight has read which side is live",
            ),
            (
                GuardRefusal::ForeignTargetGroup,
                "weights name a target group that is neither blue nor green",
            ),
            (
                GuardRefusal::GreenNotYetHealthy,
                "green weight > 0 before health-check passed",
            ),
            (
                GuardRefusal::GreenHealthStale,
                "green weight > 0 without a healthy observation of green since the last listener write",
            ),
            (
                GuardRefusal::BlueScaledUp,
                "blue is only ever scaled to zero",
            ),
            (
                GuardRefusal::EnsureGreenOnBlue,
                "ensure-green addressed blue's service",
            ),
            (
                GuardRefusal::BlueStillLive { blue_percent: 10 },
                "blue still has production weight 10 %",
            ),
            (
                GuardRefusal::BlueStillTested,
                "the test listener may still send traffic to blue",
            ),
            (
                GuardRefusal::DrainTimeNotPassed,
                "blue removed before the drain time passed since its last weight",
            ),
            (
                GuardRefusal::DrainWaitNotOver,
                "blue removed before the drain wait ended",
            ),
        ];
        for (g, text) in rows {
            assert_eq!(g.to_string(), text);
        }
    }

    #[test]
    fn refusal_reasons_keep_the_api_text() {
        let rows = [
            (RefusalReason::Over, "the deployment is over"),
            (RefusalReason::NotPaused, "not paused"),
            (RefusalReason::AlreadyRollingBack, "already rolling back"),
            (RefusalReason::AlreadyPaused, "already paused"),
            (
                RefusalReason::BlueBeingRemoved,
                "blue is being removed; nothing left to hold",
            ),
            (
                RefusalReason::TooLateToAbort,
                "blue is being removed and green serves 100 %: deploy the previous image to go back",
            ),
            (RefusalReason::PausedResumeFirst, "paused: resume first"),
            (
                RefusalReason::NothingToPromote,
                "no approval gate or wait to end in this phase",
            ),
            (
                RefusalReason::TestHooksRunning,
                "the test-traffic hooks are still running; nothing to end early",
            ),
            (
                RefusalReason::NoShiftHold,
                "no shift hold is running; nothing to end early",
            ),
            (
                RefusalReason::BakeHooksRunning,
                "the after-shift hooks are still running; nothing to end early",
            ),
        ];
        for (r, text) in rows {
            assert_eq!(r.to_string(), text);
        }
    }
}
