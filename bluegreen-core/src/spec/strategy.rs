//! How production traffic moves from blue to green.

use serde::{Deserialize, Serialize};

use super::SpecError;
use crate::time::duration;

/// Most shift steps a linear strategy may produce (1 % steps).
pub const SHIFT_STEPS_MAX: usize = 100;

/// The traffic-shift strategy, as ALB weights across the two target groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Strategy {
    /// Blue 100 → green 100 in one listener write.
    AllAtOnce,
    /// `percent` to green, wait, then the rest.
    Canary {
        percent: u8,
        #[serde(rename = "wait", alias = "wait_ms", with = "duration")]
        wait_ms: u64,
    },
    /// `step_percent` more to green every `interval` until 100.
    Linear {
        #[serde(alias = "step")]
        step_percent: u8,
        #[serde(rename = "interval", alias = "interval_ms", with = "duration")]
        interval_ms: u64,
    },
}

/// One production shift step: the green weight to set, then how long to hold it while
/// watching the rollback signals before the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftStep {
    pub green_percent: u8,
    pub hold_ms: u64,
}

impl Strategy {
    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        match *self {
            Strategy::AllAtOnce => Ok(()),
            Strategy::Canary { percent, .. } if !(1..=99).contains(&percent) => Err(
                SpecError::new("strategy.percent", "must be between 1 and 99"),
            ),
            Strategy::Linear { step_percent, .. } if !(1..=99).contains(&step_percent) => Err(
                SpecError::new("strategy.step_percent", "must be between 1 and 99"),
            ),
            Strategy::Canary { wait_ms, .. }
            | Strategy::Linear {
                interval_ms: wait_ms,
                ..
            } if wait_ms > super::WAIT_MS_MAX => Err(SpecError::new(
                "strategy.wait",
                "must be at most 24h (longer holds belong to an approval gate)",
            )),
            _ => Ok(()),
        }
    }

    /// The production steps in order. The last step is always 100 % green with no hold
    /// (bake follows it).
    pub fn steps(&self) -> Vec<ShiftStep> {
        match *self {
            Strategy::AllAtOnce => vec![ShiftStep {
                green_percent: 100,
                hold_ms: 0,
            }],
            Strategy::Canary { percent, wait_ms } => vec![
                ShiftStep {
                    green_percent: percent,
                    hold_ms: wait_ms,
                },
                ShiftStep {
                    green_percent: 100,
                    hold_ms: 0,
                },
            ],
            Strategy::Linear {
                step_percent,
                interval_ms,
            } => {
                let mut steps = Vec::new();
                let mut percent = step_percent;
                // Bounded: step_percent >= 1 so at most 99 iterations.
                while percent < 100 {
                    steps.push(ShiftStep {
                        green_percent: percent,
                        hold_ms: interval_ms,
                    });
                    percent = percent.saturating_add(step_percent);
                }
                steps.push(ShiftStep {
                    green_percent: 100,
                    hold_ms: 0,
                });
                debug_assert!(steps.len() <= SHIFT_STEPS_MAX);
                steps
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Strategy::AllAtOnce => "all-at-once",
            Strategy::Canary { .. } => "canary",
            Strategy::Linear { .. } => "linear",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percents(s: Strategy) -> Vec<u8> {
        s.steps().iter().map(|s| s.green_percent).collect()
    }

    #[test]
    fn all_at_once_is_one_step_to_100() {
        assert_eq!(percents(Strategy::AllAtOnce), vec![100]);
    }

    #[test]
    fn canary_holds_the_canary_percent_then_goes_to_100() {
        let s = Strategy::Canary {
            percent: 10,
            wait_ms: 300_000,
        };
        assert_eq!(
            s.steps(),
            vec![
                ShiftStep {
                    green_percent: 10,
                    hold_ms: 300_000
                },
                ShiftStep {
                    green_percent: 100,
                    hold_ms: 0
                }
            ]
        );
    }

    #[test]
    fn linear_steps_are_multiples_ending_at_exactly_100() {
        let s = |p| Strategy::Linear {
            step_percent: p,
            interval_ms: 60_000,
        };
        assert_eq!(percents(s(25)), vec![25, 50, 75, 100]);
        assert_eq!(percents(s(30)), vec![30, 60, 90, 100]);
        assert_eq!(percents(s(99)), vec![99, 100]);
        assert_eq!(s(1).steps().len(), 100);
        assert!(s(1).steps().iter().all(|st| st.green_percent <= 100));
    }

    #[test]
    fn strategy_reads_the_config_forms() {
        let c: Strategy =
            serde_json::from_str(r#"{"kind":"canary","percent":10,"wait":"5m"}"#).unwrap();
        assert_eq!(
            c,
            Strategy::Canary {
                percent: 10,
                wait_ms: 300_000
            }
        );
        let l: Strategy =
            serde_json::from_str(r#"{"kind":"linear","step":20,"interval":"1m"}"#).unwrap();
        assert_eq!(
            l,
            Strategy::Linear {
                step_percent: 20,
                interval_ms: 60_000
            }
        );
        let a: Strategy = serde_json::from_str(r#"{"kind":"all-at-once"}"#).unwrap();
        assert_eq!(a, Strategy::AllAtOnce);
    }

    #[test]
    fn out_of_range_percentages_name_the_field() {
        let e = Strategy::Canary {
            percent: 100,
            wait_ms: 1,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "strategy.percent");
        let e = Strategy::Linear {
            step_percent: 0,
            interval_ms: 1,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "strategy.step_percent");
    }
}
