//! Metric checks: compiled into one `GetMetricData` request, evaluated from its answer.

use crate::command::{MetricData, MetricQuery, MetricRequest};
use crate::io::{Reason, ReasonKind};
use crate::name::Name;
use crate::spec::{DeploymentSpec, MetricCheck, MetricKind, target_group_dimension};
use crate::time::Timestamp;

const NAMESPACE_ALB: &str = "AWS/ApplicationELB";
const PERIOD_S: u32 = 60;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Green,
    Blue,
}

impl Side {
    fn tag(self) -> char {
        match self {
            Side::Green => 'g',
            Side::Blue => 'b',
        }
    }
}

/// Query id: `m<check><side><series>` — CloudWatch ids must start with a lower-case letter.
fn query_id(check: usize, side: Side, series: char) -> String {
    format!("m{check}{}{series}", side.tag())
}

/// The request covering every check, green always and blue where a relative limit needs it.
pub(crate) fn request(
    spec: &DeploymentSpec,
    blue_tg: &str,
    green_tg: &str,
    now: Timestamp,
) -> MetricRequest {
    let lb = Name::from(spec.listener.load_balancer_dimension().unwrap_or_default());
    let window_ms = spec
        .metrics
        .iter()
        .map(|c| c.window_ms)
        .max()
        .unwrap_or(300_000);
    // Align to whole periods: CloudWatch returns partial periods otherwise.
    let end_ms = now.as_millis() - now.as_millis() % 60_000;
    let start = Timestamp::from_millis(end_ms.saturating_sub(window_ms));
    let mut queries = Vec::new();
    for (i, check) in spec.metrics.iter().enumerate() {
        let mut sides = vec![(Side::Green, green_tg)];
        if check.max_ratio_to_blue.is_some() {
            sides.push((Side::Blue, blue_tg));
        }
        for (side, tg) in sides {
            let tg_dim = Name::from(target_group_dimension(tg).unwrap_or_default());
            let alb_dims = vec![
                (Name::from("TargetGroup"), tg_dim.clone()),
                (Name::from("LoadBalancer"), lb.clone()),
            ];
            let q = |series, metric: &str, stat: &str, dims: Vec<(Name, Name)>| MetricQuery {
                id: query_id(i, side, series),
                namespace: NAMESPACE_ALB.into(),
                metric_name: metric.into(),
                dimensions: dims,
                stat: stat.into(),
                period_s: PERIOD_S,
            };
            match &check.metric {
                MetricKind::ErrorRate5xx => {
                    queries.push(q('a', "HTTPCode_Target_5XX_Count", "Sum", alb_dims.clone()));
                    queries.push(q('b', "RequestCount", "Sum", alb_dims));
                }
                MetricKind::LatencyP99 => {
                    queries.push(q('a', "TargetResponseTime", "p99", alb_dims));
                }
                MetricKind::Custom {
                    namespace,
                    metric_name,
                    stat,
                    dimensions,
                } => {
                    let dims = dimensions
                        .iter()
                        .map(|(k, v)| {
                            let v = match v.as_str() {
                                "$target_group" => tg_dim.clone(),
                                "$load_balancer" => lb.clone(),
                                other => other.into(),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    queries.push(MetricQuery {
                        id: query_id(i, side, 'a'),
                        namespace: namespace.clone(),
                        metric_name: metric_name.clone(),
                        dimensions: dims,
                        stat: stat.clone(),
                        period_s: PERIOD_S,
                    });
                }
            }
        }
    }
    MetricRequest {
        start,
        end: Timestamp::from_millis(end_ms),
        queries,
    }
}

fn series<'a>(data: &'a MetricData, id: &str) -> &'a [f64] {
    data.series
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.values.as_slice())
        .unwrap_or(&[])
}

/// One check's value for one side, or `None` when the window has no data (no traffic).
fn value(check: &MetricCheck, i: usize, side: Side, data: &MetricData) -> Option<f64> {
    let a = series(data, &query_id(i, side, 'a'));
    match &check.metric {
        MetricKind::ErrorRate5xx => {
            let requests: f64 = series(data, &query_id(i, side, 'b')).iter().sum();
            // No requests, no rate: a side without traffic cannot breach.
            (requests > 0.0).then(|| 100.0 * a.iter().sum::<f64>() / requests)
        }
        MetricKind::LatencyP99 => a
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
            .map(|s| s * 1000.0),
        MetricKind::Custom { .. } => a.last().copied().filter(|v| v.is_finite()),
    }
}

/// The first breached check, as a rollback reason.
pub(crate) fn evaluate(spec: &DeploymentSpec, data: &MetricData) -> Option<Reason> {
    for (i, check) in spec.metrics.iter().enumerate() {
        let Some(green) = value(check, i, Side::Green, data) else {
            continue;
        };
        if let Some(max) = check.max
            && green > max
        {
            return Some(Reason::new(
                ReasonKind::Metric,
                format!("{}: green {green:.3} > limit {max}", check.name),
            ));
        }
        if let Some(ratio) = check.max_ratio_to_blue
            && green > check.floor
            && let Some(blue) = value(check, i, Side::Blue, data)
            && green > blue * ratio
        {
            return Some(Reason::new(
                ReasonKind::Metric,
                format!(
                    "{}: green {green:.3} > {ratio} × blue {blue:.3}",
                    check.name
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::example_draft;

    #[test]
    fn the_request_covers_the_longest_window_ending_on_a_whole_minute() {
        let mut d = example_draft();
        d.metrics = vec![MetricCheck {
            name: "errors".into(),
            metric: MetricKind::ErrorRate5xx,
            max: Some(5.0),
            max_ratio_to_blue: Some(2.0),
            floor: 1.0,
            window_ms: 600_000,
        }];
        let spec = DeploymentSpec::new(d).unwrap();
        let minute_ms = 1_800_000_000_000 / 60_000 * 60_000;
        // 37.5 s into a minute: the request ends at the minute's start, which CloudWatch
        // has whole, and reaches back the window.
        let now = Timestamp::from_millis(minute_ms + 37_500);
        let r = request(&spec, "blue", "green", now);
        assert_eq!(r.end, Timestamp::from_millis(minute_ms));
        assert_eq!(r.start, Timestamp::from_millis(minute_ms - 600_000));
        // Green and, for the ratio to blue, blue: 5xx count and request count each.
        assert_eq!(r.queries.len(), 4);
        let on_the_minute = request(&spec, "blue", "green", Timestamp::from_millis(minute_ms));
        assert_eq!(on_the_minute.end, Timestamp::from_millis(minute_ms));
    }

    fn check(metric: MetricKind) -> MetricCheck {
        MetricCheck {
            name: "m".into(),
            metric,
            max: Some(5.0),
            max_ratio_to_blue: Some(2.0),
            floor: 1.0,
            window_ms: 300_000,
        }
    }

    fn data(series: &[(&str, &[f64])]) -> MetricData {
        MetricData {
            series: series
                .iter()
                .map(|(id, v)| crate::command::MetricSeries {
                    id: (*id).into(),
                    values: v.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn each_metric_kind_reads_its_value_from_its_own_series() {
        let errors = check(MetricKind::ErrorRate5xx);
        let d = data(&[("m0ga", &[1.0, 2.0]), ("m0gb", &[50.0, 50.0])]);
        assert_eq!(
            value(&errors, 0, Side::Green, &d),
            Some(3.0),
            "3 of 100: 3 %"
        );
        let idle = data(&[("m0ga", &[0.0]), ("m0gb", &[0.0])]);
        assert_eq!(
            value(&errors, 0, Side::Green, &idle),
            None,
            "no requests, no rate"
        );
        assert_eq!(
            value(&errors, 0, Side::Blue, &d),
            None,
            "blue's series are its own"
        );
        let latency = check(MetricKind::LatencyP99);
        let d = data(&[("m0ga", &[0.2, 0.5, f64::NAN, 0.1])]);
        assert_eq!(
            value(&latency, 0, Side::Green, &d),
            Some(500.0),
            "worst p99, in ms"
        );
        let custom = check(MetricKind::Custom {
            namespace: "App".into(),
            metric_name: "Errors".into(),
            stat: "Sum".into(),
            dimensions: vec![],
        });
        let d = data(&[("m0ga", &[7.0, 4.0])]);
        assert_eq!(
            value(&custom, 0, Side::Green, &d),
            Some(4.0),
            "the newest point"
        );
    }

    #[test]
    fn a_check_breaches_on_its_limit_or_on_its_ratio_to_blue_above_the_floor() {
        let mut d = example_draft();
        d.metrics = vec![check(MetricKind::ErrorRate5xx)];
        let spec = DeploymentSpec::new(d).unwrap();
        let rates = |green_errors: f64, blue_errors: f64| {
            data(&[
                ("m0ga", &[green_errors]),
                ("m0gb", &[100.0]),
                ("m0ba", &[blue_errors]),
                ("m0bb", &[100.0]),
            ])
        };
        let over = evaluate(&spec, &rates(6.0, 6.0)).expect("6 % > 5 %");
        assert_eq!(over.detail, "m: green 6.000 > limit 5");
        let ratio = evaluate(&spec, &rates(4.0, 1.5)).expect("4 % > 2 × 1.5 %");
        assert_eq!(ratio.detail, "m: green 4.000 > 2 × blue 1.500");
        assert_eq!(
            evaluate(&spec, &rates(3.0, 1.5)),
            None,
            "3 % is exactly 2 × blue"
        );
        assert_eq!(evaluate(&spec, &rates(0.9, 0.1)), None, "under the floor");
        assert_eq!(
            evaluate(&spec, &rates(1.0, 0.1)),
            None,
            "at the floor is not above it"
        );
        assert_eq!(
            evaluate(&spec, &rates(5.0, 2.5)),
            None,
            "at the limit is not over it"
        );
    }
}
