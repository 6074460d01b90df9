//! CloudWatch: alarm states (`DescribeAlarms`, 100 names a call) and metric data
//! (`GetMetricData`) for the machine's metric checks.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StateValue,
};
use aws_smithy_types::DateTime;
use bluegreen_core::{
    AlarmObservation, AlarmState, AlarmStates, CommandError, CommandResult, MetricData,
    MetricRequest, MetricSeries, Name, Observation,
};

use super::AwsCloud;
use super::errors::Effect;

/// `DescribeAlarms` takes at most 100 names a call.
pub const ALARM_NAMES_PER_CALL: usize = 100;
/// Pages followed per batch of names (100 names of metric and composite alarms fit in
/// one page of 100 records; a second page is a safety margin, not the usual case).
const ALARM_PAGES_MAX: usize = 3;
/// `GetMetricData` pages followed (one page holds 100,800 data points).
const METRIC_PAGES_MAX: usize = 5;

fn state_of(value: Option<&StateValue>) -> AlarmState {
    match value {
        Some(StateValue::Alarm) => AlarmState::Alarm,
        Some(StateValue::Ok) => AlarmState::Ok,
        // INSUFFICIENT_DATA, and any state a newer CloudWatch invents: not ALARM.
        _ => AlarmState::InsufficientData,
    }
}

pub(crate) async fn alarms(
    cloud: &AwsCloud,
    names: &[Name],
) -> Result<CommandResult, CommandError> {
    // A deployment's own names fit one call: share it with other deployments' reads.
    let mut found = if names.len() <= ALARM_NAMES_PER_CALL {
        super::alarm_batch::read(cloud, names).await?
    } else {
        fetch(cloud, names).await?
    };
    let mut states = AlarmStates::default();
    for name in names {
        match found.remove(name) {
            Some(a) => states.alarms.push(a),
            None => states.missing.push(name.clone()),
        }
    }
    Ok(CommandResult::Observed(Observation::Alarms(states)))
}

/// The named alarms' states, a hundred names a call (the ones that exist).
pub(crate) async fn fetch(
    cloud: &AwsCloud,
    names: &[Name],
) -> Result<BTreeMap<Name, AlarmObservation>, CommandError> {
    let mut found: BTreeMap<Name, AlarmObservation> = BTreeMap::new();
    for batch in names.chunks(ALARM_NAMES_PER_CALL) {
        let mut token: Option<String> = None;
        for _ in 0..ALARM_PAGES_MAX {
            let out = cloud
                .call(
                    "DescribeAlarms",
                    Effect::Read,
                    cloud
                        .cloudwatch
                        .describe_alarms()
                        .set_alarm_names(Some(batch.iter().map(String::from).collect()))
                        .alarm_types(AlarmType::MetricAlarm)
                        .alarm_types(AlarmType::CompositeAlarm)
                        .max_records(100)
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
            let metric = out
                .metric_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
            let composite = out
                .composite_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
            for (name, state, reason) in metric.chain(composite) {
                // Only names asked for: the machine rejects anything else as a bad answer.
                if let Some(name) = name.filter(|n| batch.iter().any(|b| b == n)) {
                    found.insert(
                        Name::from(name),
                        AlarmObservation {
                            name: Name::from(name),
                            state: state_of(state),
                            reason: Name::from(reason.unwrap_or_default()),
                        },
                    );
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(found)
}

fn query(q: &bluegreen_core::MetricQuery) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(&q.namespace)
        .metric_name(&q.metric_name)
        .set_dimensions(Some(
            q.dimensions
                .iter()
                .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                .collect(),
        ))
        .build();
    MetricDataQuery::builder()
        .id(&q.id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(i32::try_from(q.period_s).unwrap_or(i32::MAX))
                .stat(&q.stat)
                .build(),
        )
        .return_data(true)
        .build()
}

pub(crate) async fn metrics(
    cloud: &AwsCloud,
    request: &MetricRequest,
) -> Result<CommandResult, CommandError> {
    let millis = |t: bluegreen_core::Timestamp| {
        DateTime::from_millis(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
    };
    let queries: Vec<MetricDataQuery> = request.queries.iter().map(query).collect();
    // Every id asked for gets a series, empty when CloudWatch has no data for it.
    let mut series: BTreeMap<&str, Vec<f64>> = request
        .queries
        .iter()
        .map(|q| (q.id.as_str(), Vec::new()))
        .collect();
    let mut token: Option<String> = None;
    for _ in 0..METRIC_PAGES_MAX {
        let out = cloud
            .call(
                "GetMetricData",
                Effect::Read,
                cloud
                    .cloudwatch
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(millis(request.start))
                    .end_time(millis(request.end))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(token.take())
                    .send(),
            )
            .await?;
        for result in out.metric_data_results() {
            if let Some(values) = result.id().and_then(|id| series.get_mut(id)) {
                values.extend_from_slice(result.values());
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(CommandResult::Observed(Observation::Metrics(MetricData {
        series: request
            .queries
            .iter()
            .map(|q| MetricSeries {
                id: q.id.clone(),
                values: series.remove(q.id.as_str()).unwrap_or_default(),
            })
            .collect(),
    })))
}
