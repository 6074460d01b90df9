//! CloudWatch: load-balancer metrics simulated from the listener weights and what each
//! target group serves (request counts follow the weights; 5xx and latency follow the
//! image's quality), data that lands late, `GetMetricData`, and alarms evaluated from
//! those metrics — or forced into ALARM by a fault.

use bluegreen_core::Name;
use std::collections::BTreeMap;

use bluegreen_core::ids::mix64;
use bluegreen_core::{
    AlarmObservation, AlarmState, AlarmStates, MetricData, MetricRequest, MetricSeries, Timestamp,
};

use super::{AppIx, World};

/// Forced ALARM windows remembered per alarm.
pub const FORCED_WINDOWS_MAX: usize = 16;
/// Most periods one `GetMetricData` query may return (CloudWatch: 100,800 datapoints a
/// call; our windows are at most a day of minutes).
pub const PERIODS_PER_QUERY_MAX: u64 = 1_440;

/// An alarm on its app's load balancer: targets' 5xx as a percentage of requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    pub name: Name,
    pub app: AppIx,
    pub lb: Option<u32>,
    pub threshold_percent: f64,
    /// `[from, until)` windows where a fault holds the alarm in ALARM.
    pub forced: Vec<(Timestamp, Timestamp)>,
}

#[derive(Clone, Debug, Default)]
pub struct CloudWatch {
    pub alarms: Vec<Alarm>,
    pub(crate) by_name: BTreeMap<Name, u32>,
    reasons: Reasons,
}

/// The state reasons an alarm read repeats, made once: deployments read their alarms at
/// every poll, and a reason made from text at each read was an allocation.
#[derive(Clone, Debug)]
struct Reasons {
    forced: Name,
    no_requests: Name,
    below: Name,
}

/// Made once per thread (a world is made per run), shared by every world after.
impl Default for Reasons {
    fn default() -> Self {
        thread_local! {
            static REASONS: Reasons = Reasons::new();
        }
        REASONS.with(Reasons::clone)
    }
}

impl Reasons {
    fn new() -> Self {
        Reasons {
            forced: Name::from(
                "Threshold Crossed: 1 datapoint was greater than the threshold (forced)",
            ),
            no_requests: Name::from("no requests in the period"),
            below: Name::from("5xx below the threshold"),
        }
    }
}

/// One period's data for one target group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodData {
    pub requests: f64,
    pub errors_5xx: f64,
    pub p99_s: f64,
}

impl World {
    /// A pseudo-random but fixed value in `[0, 1)` for (key, time): metrics must read the
    /// same whenever they are asked for, so they are hashed, not drawn.
    fn noise(&self, key: u64, at: Timestamp) -> f64 {
        let h = mix64(self.seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ at.as_millis());
        (h >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When the datapoint of the period ending at `end` lands.
    fn lands_at(&self, key: u64, end: Timestamp) -> Timestamp {
        let span = self.profile.metric_lag_ms;
        let lag = span.lo + (self.noise(key ^ 0x1a6, end) * (span.hi - span.lo + 1) as f64) as u64;
        end.plus_ms(lag.min(span.hi))
    }

    /// What target group `tg` served during `[start, start + len_ms)` (the production
    /// forward's weights at the period's middle decide its share of the traffic).
    pub fn period_data(&self, tg: u32, start: Timestamp, len_ms: u64) -> Option<PeriodData> {
        let group = &self.elb.target_groups[tg as usize];
        let app = self.apps.get(group.app as usize)?;
        let mid = start.plus_ms(len_ms / 2);
        let forward = &self.elb.forwards[app.prod as usize];
        let config = forward.effective_at(mid);
        let total = super::Forward::total(config);
        let weight = super::Forward::weight_of(config, tg);
        if total == 0 || weight == 0 {
            return None;
        }
        let share = f64::from(weight) / f64::from(total);
        let key = u64::from(tg) + 1;
        let jitter = 0.95 + 0.1 * self.noise(key, start);
        let requests =
            (f64::from(self.profile.requests_per_s) * len_ms as f64 / 1000.0 * share * jitter)
                .round();
        if requests <= 0.0 {
            return None;
        }
        let quality = self.elb.quality_at(tg, mid);
        let errors_5xx =
            (requests * quality.error_rate() * (0.5 + self.noise(key ^ 0x5, start))).round();
        let p99_s = quality.p99_s() * (0.9 + 0.2 * self.noise(key ^ 0x99, start));
        Some(PeriodData {
            requests,
            errors_5xx,
            p99_s,
        })
    }

    /// GetMetricData over the simulated ALB metrics. Unknown metrics or dimensions
    /// return empty series, as CloudWatch does; periods without data are omitted.
    pub(crate) fn get_metric_data(&self, req: &MetricRequest) -> MetricData {
        let mut series = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            let mut values = Vec::new();
            let tg = q
                .dimensions
                .iter()
                .find(|(k, _)| k == "TargetGroup")
                .and_then(|(_, v)| self.elb.tg_by_dimension.get(v).copied());
            if let (Some(tg), "AWS/ApplicationELB") = (tg, q.namespace.as_str()) {
                let period_ms = u64::from(q.period_s.max(1)) * 1000;
                let key = u64::from(tg) + 1;
                let mut start = req.start;
                for _ in 0..PERIODS_PER_QUERY_MAX {
                    let end = start.plus_ms(period_ms);
                    if end > req.end || self.lands_at(key, end) > self.now {
                        break;
                    }
                    if let Some(p) = self.period_data(tg, start, period_ms) {
                        let v = match q.metric_name.as_str() {
                            "RequestCount" => Some(p.requests),
                            "HTTPCode_Target_5XX_Count" => Some(p.errors_5xx),
                            "TargetResponseTime" => Some(p.p99_s),
                            _ => None,
                        };
                        values.extend(v);
                    }
                    start = end;
                }
            }
            series.push(MetricSeries {
                id: q.id.clone(),
                values,
            });
        }
        MetricData { series }
    }

    /// How often CloudWatch evaluates an alarm: six times a period. An alarm's state
    /// changes only at an evaluation, which is when CloudWatch also announces the change
    /// (EventBridge); `DescribeAlarms` returns the latest evaluation's state.
    pub fn alarm_eval_ms(&self) -> u64 {
        (self.profile.alarm_period_ms / 6).max(100)
    }

    /// The latest evaluation at or before now.
    pub fn alarm_evaluated_at(&self) -> Timestamp {
        let eval = self.alarm_eval_ms();
        Timestamp::from_millis(self.now.as_millis() - self.now.as_millis() % eval)
    }

    /// An alarm's state as of its latest evaluation: forced by a fault, else the load
    /// balancer's 5xx percentage over the latest period whose data had landed.
    pub fn alarm_state(&self, alarm: u32) -> (AlarmState, Name) {
        let a = &self.cw.alarms[alarm as usize];
        let now = self.alarm_evaluated_at();
        if a.forced
            .iter()
            .any(|(from, until)| *from <= now && now < *until)
        {
            return (AlarmState::Alarm, self.cw.reasons.forced.clone());
        }
        let period = self.profile.alarm_period_ms.max(1);
        let key = 0xa1a7_0000 + u64::from(alarm);
        let mut end = Timestamp::from_millis(now.as_millis() - now.as_millis() % period);
        // Bounded: the lag is at most a few periods.
        for _ in 0..8 {
            if self.lands_at(key, end) <= now {
                break;
            }
            end = Timestamp::from_millis(end.as_millis().saturating_sub(period));
        }
        let start = Timestamp::from_millis(end.as_millis().saturating_sub(period));
        let app = &self.apps[a.app as usize];
        let (mut requests, mut errors) = (0.0, 0.0);
        for tg in app.target_groups {
            if let Some(p) = self.period_data(tg, start, period) {
                requests += p.requests;
                errors += p.errors_5xx;
            }
        }
        if requests <= 0.0 {
            return (
                AlarmState::InsufficientData,
                self.cw.reasons.no_requests.clone(),
            );
        }
        let percent = 100.0 * errors / requests;
        if percent > a.threshold_percent {
            (
                AlarmState::Alarm,
                format!(
                    "Threshold Crossed: 5xx {percent:.2} % > {} % in the period ending {end}",
                    a.threshold_percent
                )
                .into(),
            )
        } else {
            // The common answer: kept cheap (no formatting, no allocation).
            (AlarmState::Ok, self.cw.reasons.below.clone())
        }
    }

    /// DescribeAlarms by name.
    pub(crate) fn describe_alarms(&self, names: &[Name]) -> AlarmStates {
        let mut out = AlarmStates {
            alarms: Vec::with_capacity(names.len()),
            missing: Vec::new(),
        };
        for n in names {
            match self.cw.by_name.get(n) {
                Some(&a) => {
                    let (state, reason) = self.alarm_state(a);
                    out.alarms.push(AlarmObservation {
                        name: n.clone(),
                        state,
                        reason,
                    });
                }
                None => out.missing.push(n.clone()),
            }
        }
        out
    }

    /// Hold an alarm in ALARM over `[from, until)` (a fault, or a scenario's doing).
    pub fn force_alarm(&mut self, name: &str, from: Timestamp, until: Timestamp) -> bool {
        let Some(&a) = self.cw.by_name.get(name) else {
            return false;
        };
        let forced = &mut self.cw.alarms[a as usize].forced;
        if forced.len() >= FORCED_WINDOWS_MAX {
            forced.remove(0);
        }
        forced.push((from, until));
        true
    }

    pub(crate) fn add_alarm(&mut self, name: &str, app: AppIx, lb: Option<u32>) -> u32 {
        if let Some(&a) = self.cw.by_name.get(name) {
            return a;
        }
        let ix = self.cw.alarms.len() as u32;
        self.cw.alarms.push(Alarm {
            name: Name::from(name),
            app,
            lb,
            threshold_percent: self.profile.alarm_5xx_percent,
            forced: Vec::new(),
        });
        self.cw.by_name.insert(Name::from(name), ix);
        ix
    }
}
