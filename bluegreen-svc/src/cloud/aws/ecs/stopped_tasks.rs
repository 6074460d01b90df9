//! Stopped tasks: the circuit breaker's count of green tasks that stopped by failure.

use aws_sdk_ecs::types::{DesiredStatus, Task, TaskStopCode};
use bluegreen_core::{CommandError, FailureFilter};

use super::super::AwsCloud;
use super::super::errors::Effect;

/// Stopped tasks considered per observation: `ListTasks` pages of 100 (ECS keeps stopped
/// tasks visible for about an hour), described 100 at a time.
const STOPPED_TASK_PAGES_MAX: usize = 5;
const DESCRIBE_TASKS_BATCH: usize = 100;

/// The task-set id ECS puts in `startedBy` (`ecs-svc/…`) from an id or an ARN
/// (`arn:…:task-set/<cluster>/<service>/<id>`).
pub(crate) fn task_set_id(id_or_arn: &str) -> &str {
    bluegreen_core::arn::short_name(id_or_arn)
}

/// Did this stopped task stop by failure (not by scale-in, a deployment replacing it, a
/// user or the infrastructure)?
pub(crate) fn stopped_by_failure(task: &Task) -> bool {
    match task.stop_code() {
        Some(TaskStopCode::TaskFailedToStart | TaskStopCode::EssentialContainerExited) => true,
        // The scheduler also stops tasks that fail their load balancer or container
        // health checks; scale-in and replacement say "Scaling activity" instead.
        Some(TaskStopCode::ServiceSchedulerInitiated) => task
            .stopped_reason()
            .is_some_and(|r| r.to_ascii_lowercase().contains("health check")),
        Some(_) => false,
        None => task
            .containers()
            .iter()
            .any(|c| c.exit_code().is_some_and(|code| code != 0)),
    }
}

/// Stopped tasks of the filter's revision (and task set) that stopped by failure at or
/// after `since`: `ListTasks` (STOPPED), then `DescribeTasks` only when there are any.
pub(super) async fn failed_tasks(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    filter: &FailureFilter,
) -> Result<u32, CommandError> {
    let started_by = filter.started_by.as_deref().map(task_set_id);
    let mut arns: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..STOPPED_TASK_PAGES_MAX {
        let mut request = cloud
            .ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(DesiredStatus::Stopped)
            .max_results(100)
            .set_next_token(token.take());
        // ECS: startedBy must be the only filter besides the status.
        request = match started_by {
            Some(id) => request.started_by(id),
            None => request.service_name(service),
        };
        let page = cloud
            .call("ListTasks", Effect::Read, request.send())
            .await?;
        arns.extend(page.task_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let since_ms = i64::try_from(filter.since.as_millis()).unwrap_or(i64::MAX);
    let mut failed = 0u32;
    for batch in arns.chunks(DESCRIBE_TASKS_BATCH) {
        let out = cloud
            .call(
                "DescribeTasks",
                Effect::Read,
                cloud
                    .ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(batch.to_vec()))
                    .send(),
            )
            .await?;
        for task in out.tasks() {
            let at = task
                .stopped_at()
                .or(task.stopping_at())
                .or(task.execution_stopped_at())
                .or(task.created_at())
                .and_then(|t| t.to_millis().ok());
            let ours = task.task_definition_arn() == Some(filter.task_definition.as_str())
                && started_by.is_none_or(|id| task.started_by() == Some(id));
            if ours && at.is_some_and(|ms| ms >= since_ms) && stopped_by_failure(task) {
                failed += 1;
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_set_ids_come_out_of_arns() {
        assert_eq!(
            task_set_id("arn:aws:ecs:us-east-1:1:task-set/prod/api/ecs-svc/123"),
            "ecs-svc/123"
        );
        assert_eq!(task_set_id("ecs-svc/123"), "ecs-svc/123");
    }

    #[test]
    fn scale_in_is_not_a_failure_but_health_check_kills_are() {
        let task = |code: TaskStopCode, reason: &str| {
            Task::builder()
                .stop_code(code)
                .stopped_reason(reason)
                .build()
        };
        assert!(stopped_by_failure(&task(
            TaskStopCode::EssentialContainerExited,
            "Essential container in task exited"
        )));
        assert!(stopped_by_failure(&task(
            TaskStopCode::TaskFailedToStart,
            "CannotPullContainerError"
        )));
        assert!(stopped_by_failure(&task(
            TaskStopCode::ServiceSchedulerInitiated,
            "Task failed ELB health checks in (target-group arn:…)"
        )));
        assert!(!stopped_by_failure(&task(
            TaskStopCode::ServiceSchedulerInitiated,
            "Scaling activity initiated by (deployment ecs-svc/1)"
        )));
        assert!(!stopped_by_failure(&task(
            TaskStopCode::UserInitiated,
            "stopped by hand"
        )));
        assert!(!stopped_by_failure(&task(
            TaskStopCode::SpotInterruption,
            "spot"
        )));
    }
}
