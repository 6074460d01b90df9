//! ECS: task-definition revisions, services (service pair), task sets (EXTERNAL model),
//! and the observation of a service with its task sets and failed tasks.

pub(crate) mod batch;
mod stopped_tasks;
mod task_definitions;

use aws_sdk_ecs::types::{LoadBalancer, Scale, ScaleUnit, Service, TaskSet};
use bluegreen_core::{
    CommandError, CommandResult, EnsureGreen, FailureFilter, Name, Observation, ServiceStatus,
    TaskSetStatus,
};
use std::sync::Arc;

use super::errors::Effect;
use super::{AwsCloud, count};

pub use task_definitions::{FIND_LOOKBACK_REVISIONS, TAG_BASE, TAG_IMAGE};
pub(crate) use task_definitions::{find_task_definition, register_task_definition};

fn bad(code: &str, message: String) -> CommandError {
    CommandError::fatal(code, message)
}

/// A write's answer lacked what it must carry: it was applied, what it made is unknown.
fn unreadable_write(op: &str, what: &str) -> CommandError {
    CommandError::ambiguous("BadResponse", format!("{op} answered without {what}"))
}

pub(crate) async fn ensure_green_service(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    task_definition: &str,
    desired_count: u32,
) -> Result<CommandResult, CommandError> {
    update_service(
        cloud,
        cluster,
        service,
        Some(task_definition),
        desired_count,
    )
    .await?;
    Ok(CommandResult::GreenEnsured { task_set: None })
}

pub(crate) async fn scale(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    desired_count: u32,
) -> Result<CommandResult, CommandError> {
    update_service(cloud, cluster, service, None, desired_count).await?;
    Ok(CommandResult::Scaled)
}

/// UpdateService: the desired count, and the revision when one is given. Idempotent:
/// sending the same values again changes nothing.
async fn update_service(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    task_definition: Option<&str>,
    desired_count: u32,
) -> Result<(), CommandError> {
    cloud
        .call(
            "UpdateService",
            Effect::IdempotentWrite,
            cloud
                .ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .set_task_definition(task_definition.map(str::to_string))
                .desired_count(i32::try_from(desired_count).unwrap_or(i32::MAX))
                .send(),
        )
        .await?;
    Ok(())
}

/// Green's task set: blue's settings, green's target group and revision. One with our
/// external id and revision that already exists (a retry after a lost answer) is
/// returned instead of creating another — on top of the client token, which is what
/// AWS itself deduplicates on.
pub(crate) async fn ensure_green_task_set(
    cloud: &AwsCloud,
    green: &EnsureGreen,
    client_token: &str,
) -> Result<CommandResult, CommandError> {
    let EnsureGreen::TaskSet {
        cluster,
        service,
        task_definition,
        target_group,
        like_task_set,
        external_id,
    } = green
    else {
        unreachable!("ensure_green_task_set is only called for task sets")
    };
    let svc = describe_service(cloud, cluster, service).await?;
    if let Some(existing) = svc.task_sets().iter().find(|ts| {
        ts.external_id() == Some(external_id.as_str())
            && ts.task_definition() == Some(task_definition.as_str())
            && ts.status() != Some("DRAINING")
    }) && let Some(arn) = existing.task_set_arn()
    {
        return Ok(CommandResult::GreenEnsured {
            task_set: Some(Name::from(arn)),
        });
    }
    let like = svc
        .task_sets()
        .iter()
        .find(|ts| {
            ts.task_set_arn() == Some(like_task_set.as_str())
                || ts.id() == Some(like_task_set.as_str())
        })
        .ok_or_else(|| {
            bad(
                "TaskSetNotFoundException",
                format!("blue's task set {like_task_set} is not in service {service}"),
            )
        })?;
    let lb = like
        .load_balancers()
        .iter()
        .find(|lb| lb.target_group_arn() != Some(target_group.as_str()))
        .or_else(|| like.load_balancers().first())
        .ok_or_else(|| {
            bad(
                "InvalidParameterException",
                format!("blue's task set {like_task_set} has no load balancer to copy the container and port from"),
            )
        })?;
    let load_balancer = LoadBalancer::builder()
        .target_group_arn(target_group)
        .set_container_name(lb.container_name.clone())
        .set_container_port(lb.container_port)
        .build();
    let mut request = cloud
        .ecs
        .create_task_set()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .external_id(external_id)
        .load_balancers(load_balancer)
        .set_network_configuration(like.network_configuration.clone())
        .set_platform_version(like.platform_version.clone())
        .scale(
            Scale::builder()
                .unit(ScaleUnit::Percent)
                .value(100.0)
                .build(),
        )
        .client_token(client_token);
    request = if like.capacity_provider_strategy().is_empty() {
        request.set_launch_type(like.launch_type.clone())
    } else {
        request.set_capacity_provider_strategy(like.capacity_provider_strategy.clone())
    };
    let out = cloud
        .call("CreateTaskSet", Effect::IdempotentWrite, request.send())
        .await?;
    let arn = out
        .task_set()
        .and_then(|ts| ts.task_set_arn())
        .ok_or_else(|| unreadable_write("CreateTaskSet", "the task set's ARN"))?;
    Ok(CommandResult::GreenEnsured {
        task_set: Some(Name::from(arn)),
    })
}

pub(crate) async fn delete_task_set(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    task_set: &str,
) -> Result<CommandResult, CommandError> {
    let result = cloud
        .call(
            "DeleteTaskSet",
            Effect::IdempotentWrite,
            cloud
                .ecs
                .delete_task_set()
                .cluster(cluster)
                .service(service)
                .task_set(task_set)
                // Blue's task set is deleted at full size once green is primary.
                .force(true)
                .send(),
        )
        .await;
    match result {
        Ok(_) => Ok(CommandResult::Deleted),
        // Already gone: what was asked for holds. (The emulator answers ClientException.)
        Err(e)
            if e.code == "TaskSetNotFoundException"
                || (e.code == "ClientException"
                    && e.message.contains("task set does not exist")) =>
        {
            Ok(CommandResult::Deleted)
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn set_primary(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    task_set: &str,
) -> Result<CommandResult, CommandError> {
    cloud
        .call(
            "UpdateServicePrimaryTaskSet",
            Effect::IdempotentWrite,
            cloud
                .ecs
                .update_service_primary_task_set()
                .cluster(cluster)
                .service(service)
                .primary_task_set(task_set)
                .send(),
        )
        .await?;
    Ok(CommandResult::PrimarySet)
}

/// One service, or a Fatal `ServiceNotFoundException` naming it.
pub(crate) async fn describe_service(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
) -> Result<Service, CommandError> {
    let mut services = describe_services(cloud, cluster, &[Name::from(service)]).await?;
    Ok(services.remove(0))
}

/// Services in the order asked (one call); any missing one is a Fatal error naming it.
pub(crate) async fn describe_services(
    cloud: &AwsCloud,
    cluster: &str,
    names: &[Name],
) -> Result<Vec<Service>, CommandError> {
    describe_services_each(cloud, cluster, names)
        .await?
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// Each service asked for (one call, at most ten), or the Fatal error that names it
/// as missing; `Err` when the call itself failed.
#[allow(clippy::type_complexity)]
pub(crate) async fn describe_services_each(
    cloud: &AwsCloud,
    cluster: &str,
    names: &[Name],
) -> Result<Vec<(Name, Result<Service, CommandError>)>, CommandError> {
    let out = cloud
        .call(
            "DescribeServices",
            Effect::Read,
            cloud
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(names.iter().map(String::from).collect()))
                .send(),
        )
        .await?;
    Ok(names
        .iter()
        .map(|name| {
            let wanted = super::short_name(name);
            let found = out
                .services()
                .iter()
                .find(|s| {
                    s.service_name() == Some(wanted) || s.service_arn() == Some(name.as_str())
                })
                .cloned()
                .ok_or_else(|| {
                    let reason = out
                        .failures()
                        .iter()
                        .find(|f| f.arn().is_some_and(|a| super::short_name(a) == wanted))
                        .and_then(|f| f.reason())
                        .unwrap_or("not returned");
                    bad(
                        "ServiceNotFoundException",
                        format!("service {name} not found in cluster {cluster} ({reason})"),
                    )
                });
            (name.clone(), found)
        })
        .collect())
}

/// The target groups a service or task set is bound to.
fn target_groups(load_balancers: &[aws_sdk_ecs::types::LoadBalancer]) -> Arc<[Name]> {
    load_balancers
        .iter()
        .filter_map(|lb| lb.target_group_arn().map(Name::from))
        .collect()
}

fn task_set_status(ts: &TaskSet) -> TaskSetStatus {
    TaskSetStatus {
        id: Name::from(ts.id().unwrap_or_default()),
        arn: Name::from(ts.task_set_arn().unwrap_or_default()),
        status: Name::from(ts.status().unwrap_or_default()),
        external_id: ts.external_id().map(Name::from),
        task_definition: Name::from(ts.task_definition().unwrap_or_default()),
        target_groups: target_groups(ts.load_balancers()),
        computed_desired_count: count(ts.computed_desired_count()),
        running_count: count(ts.running_count()),
        pending_count: count(ts.pending_count()),
        stability_status: ts
            .stability_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default()
            .into(),
    }
}

pub(crate) async fn observe_service(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
    failures: Option<&FailureFilter>,
    also: Option<&str>,
) -> Result<CommandResult, CommandError> {
    // Batched with other deployments' reads of this cluster's services; `also` rides in
    // the same call.
    let found = match also {
        Some(also) => batch::describe_many(cloud, cluster, &[service, also]).await?,
        None => vec![batch::describe_one(cloud, cluster, service).await?],
    };
    let failed_tasks = match failures {
        Some(filter) => stopped_tasks::failed_tasks(cloud, cluster, service, filter).await?,
        None => 0,
    };
    let mut status = service_status(service, &found[0], failed_tasks);
    if let (Some(also), Some(s)) = (also, found.get(1)) {
        status.also = Some(Box::new(service_status(also, s, 0)));
    }
    Ok(CommandResult::Observed(Observation::Service(Box::new(
        status,
    ))))
}

fn service_status(service: &str, s: &Service, failed_tasks: u32) -> ServiceStatus {
    ServiceStatus {
        service: Name::from(service),
        status: Name::from(s.status().unwrap_or_default()),
        desired_count: count(s.desired_count()),
        running_count: count(s.running_count()),
        pending_count: count(s.pending_count()),
        task_definition: Name::from(s.task_definition().unwrap_or_default()),
        target_groups: target_groups(s.load_balancers()),
        task_sets: s.task_sets().iter().map(task_set_status).collect(),
        failed_tasks,
        also: None,
    }
}
