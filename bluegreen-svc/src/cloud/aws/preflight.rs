//! Preflight: every resource a deployment names exists and fits together. Each missing
//! or mismatched resource is a Fatal error naming it; nothing is written.
//!
//! Calls, in order (the core's `aws_calls_min` for preflight): `DescribeListeners` for
//! the production listener (+ `DescribeRules` for its rule), the same for the test
//! listener, `DescribeTargetGroups` (both), `DescribeClusters`, `DescribeServices` (all),
//! `DescribeTaskDefinition` (the live one). Only when a target group is missing are they
//! described one by one, to say which.

use aws_sdk_ecs::types::{DeploymentControllerType, Service};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetGroup};
use bluegreen_core::{
    CommandError, CommandResult, ErrorClass, ListenerRef, ListenerState, Mode, Name, Preflight,
};

use super::elbv2::{Template, forwards_of};
use super::errors::Effect;
use super::{AwsCloud, ecs, short_name, target_group_name};

/// A Fatal error from AWS, reworded to name the resource; other classes pass unchanged.
fn naming(e: CommandError, what: String) -> CommandError {
    if e.class == ErrorClass::Fatal {
        CommandError::fatal(e.code, format!("{what}: {}", e.message))
    } else {
        e
    }
}

fn fatal(code: &str, message: String) -> CommandError {
    CommandError::fatal(code, message)
}

/// The listener (or rule) exists, is an ALB listener, and the rule belongs to it.
/// Returns the load balancer ARN and the action's forwards.
async fn check_listener(
    cloud: &AwsCloud,
    role: &str,
    l: &ListenerRef,
) -> Result<(String, ListenerState), CommandError> {
    let out = cloud
        .call(
            "DescribeListeners",
            Effect::Read,
            cloud
                .elb
                .describe_listeners()
                .listener_arns(&l.listener_arn)
                .send(),
        )
        .await
        .map_err(|e| naming(e, format!("{role} {} not found", l.listener_arn)))?;
    let listener = out
        .listeners()
        .iter()
        .find(|x| x.listener_arn() == Some(l.listener_arn.as_str()))
        .ok_or_else(|| {
            fatal(
                "ListenerNotFound",
                format!("{role} {} not found", l.listener_arn),
            )
        })?;
    if !matches!(
        listener.protocol(),
        Some(ProtocolEnum::Http | ProtocolEnum::Https)
    ) {
        return Err(fatal(
            "ListenerNotSupported",
            format!(
                "{role} {} uses protocol {}: weighted forwarding needs an Application Load Balancer (HTTP/HTTPS) listener",
                l.listener_arn,
                listener.protocol().map(|p| p.as_str()).unwrap_or("unknown")
            ),
        ));
    }
    let lb = listener.load_balancer_arn().unwrap_or_default().to_string();
    let actions = match &l.rule_arn {
        None => listener.default_actions().to_vec(),
        Some(rule_arn) => {
            let belongs = rule_arn
                .replacen(":listener-rule/", ":listener/", 1)
                .starts_with(&format!("{}/", l.listener_arn));
            if !belongs {
                return Err(fatal(
                    "RuleNotFound",
                    format!(
                        "{role} rule {rule_arn} does not belong to listener {}",
                        l.listener_arn
                    ),
                ));
            }
            let rules = cloud
                .call(
                    "DescribeRules",
                    Effect::Read,
                    cloud.elb.describe_rules().rule_arns(rule_arn).send(),
                )
                .await
                .map_err(|e| naming(e, format!("{role} rule {rule_arn} not found")))?;
            let rule = rules
                .rules()
                .iter()
                .find(|r| r.rule_arn() == Some(rule_arn.as_str()))
                .ok_or_else(|| {
                    fatal("RuleNotFound", format!("{role} rule {rule_arn} not found"))
                })?;
            if rule.is_default() == Some(true) {
                return Err(fatal(
                    "RuleNotSupported",
                    format!(
                        "{role} rule {rule_arn} is the listener's default rule: name the listener without a rule"
                    ),
                ));
            }
            rule.actions().to_vec()
        }
    };
    // Warm the template so the first weight write costs the write and its read-back.
    cloud.remember_template(l, Template::of(&actions));
    Ok((lb, forwards_of(&actions)))
}

/// Both target groups, each named in the error when missing.
async fn target_groups(
    cloud: &AwsCloud,
    arns: &[Name; 2],
) -> Result<Vec<TargetGroup>, CommandError> {
    let describe = |arns: Vec<String>| async move {
        cloud
            .call(
                "DescribeTargetGroups",
                Effect::Read,
                cloud
                    .elb
                    .describe_target_groups()
                    .set_target_group_arns(Some(arns))
                    .send(),
            )
            .await
    };
    match describe(arns.iter().map(String::from).collect()).await {
        Ok(out) => arns
            .iter()
            .map(|arn| {
                out.target_groups()
                    .iter()
                    .find(|t| t.target_group_arn() == Some(arn.as_str()))
                    .cloned()
                    .ok_or_else(|| {
                        fatal(
                            "TargetGroupNotFound",
                            format!("target group {arn} not found"),
                        )
                    })
            })
            .collect(),
        Err(e) if e.code == "TargetGroupNotFound" => {
            // Which one? Ask for each (only on this failure path).
            for arn in arns {
                describe(vec![arn.to_string()]).await.map_err(|e| {
                    naming(
                        e,
                        format!("target group {} ({arn}) not found", target_group_name(arn)),
                    )
                })?;
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

fn check_service_pair(p: &Preflight, services: &[Service]) -> Result<(), CommandError> {
    for (i, (name, s)) in p.services.iter().zip(services).enumerate() {
        if let Some(kind) = s
            .deployment_controller()
            .map(|c| c.r#type())
            .filter(|t| **t != DeploymentControllerType::Ecs)
        {
            return Err(fatal(
                "ServiceNotSupported",
                format!(
                    "service {name} uses the {} deployment controller: the service-pair mode needs the ECS (rolling update) controller",
                    kind.as_str()
                ),
            ));
        }
        let tg = &p.target_groups[i];
        if !s
            .load_balancers()
            .iter()
            .any(|lb| lb.target_group_arn() == Some(tg.as_str()))
        {
            return Err(fatal(
                "TargetGroupNotAttached",
                format!(
                    "target group {} is not attached to service {}",
                    target_group_name(tg),
                    short_name(name)
                ),
            ));
        }
    }
    Ok(())
}

fn check_task_set_service(p: &Preflight, services: &[Service]) -> Result<(), CommandError> {
    let [s] = services else {
        return Err(fatal(
            "InvalidParameterException",
            format!(
                "task-set mode takes exactly one service, got {}",
                services.len()
            ),
        ));
    };
    let kind = s
        .deployment_controller()
        .map(|c| c.r#type().as_str())
        .unwrap_or("ECS");
    if kind != DeploymentControllerType::External.as_str() {
        return Err(fatal(
            "ServiceNotSupported",
            format!(
                "service {} uses the {kind} deployment controller: task-set mode needs the EXTERNAL controller",
                short_name(&p.services[0])
            ),
        ));
    }
    Ok(())
}

/// The task definition the live side runs: the slot holding the production weight (or,
/// when the listener is not at rest, the scaled-up one); for task sets the primary.
fn live_task_definition<'a>(
    p: &Preflight,
    services: &'a [Service],
    prod: &ListenerState,
) -> Result<&'a str, CommandError> {
    let td = match p.mode {
        Mode::ServicePair => {
            let total = prod.total_weight();
            let by_weight =
                (0..2).find(|&i| total > 0 && prod.weight_of(&p.target_groups[i]) == total);
            let slot = by_weight
                .or_else(|| services.iter().position(|s| s.desired_count() > 0))
                .unwrap_or(0);
            services.get(slot).and_then(|s| s.task_definition())
        }
        Mode::TaskSet => services.first().and_then(|s| {
            let sets = s.task_sets();
            sets.iter()
                .find(|ts| ts.status() == Some("PRIMARY"))
                .or_else(|| sets.iter().find(|ts| ts.status() != Some("DRAINING")))
                .and_then(|ts| ts.task_definition())
        }),
    };
    td.ok_or_else(|| {
        fatal(
            "TaskDefinitionNotFound",
            format!(
                "service {} runs no task definition (no task set in task-set mode) to check container {} in",
                p.services.join(", "),
                p.container
            ),
        )
    })
}

pub(crate) async fn run(cloud: &AwsCloud, p: &Preflight) -> Result<CommandResult, CommandError> {
    let (lb, prod) = check_listener(cloud, "listener", &p.listener).await?;
    if let Some(test) = &p.test_listener {
        check_listener(cloud, "test listener", test).await?;
    }
    for tg in target_groups(cloud, &p.target_groups).await? {
        let name = tg.target_group_name().unwrap_or_default();
        let lbs = tg.load_balancer_arns();
        if !lbs.is_empty() && !lbs.contains(&lb) {
            return Err(fatal(
                "TargetGroupNotAttached",
                format!(
                    "target group {name} belongs to load balancer {}, not to the listener's load balancer {lb}",
                    lbs.join(", ")
                ),
            ));
        }
    }

    let clusters = cloud
        .call(
            "DescribeClusters",
            Effect::Read,
            cloud.ecs.describe_clusters().clusters(&p.cluster).send(),
        )
        .await?;
    let wanted = short_name(&p.cluster);
    let cluster = clusters
        .clusters()
        .iter()
        .find(|c| c.cluster_name() == Some(wanted) || c.cluster_arn() == Some(p.cluster.as_str()))
        .ok_or_else(|| {
            fatal(
                "ClusterNotFoundException",
                format!("cluster {} not found", p.cluster),
            )
        })?;
    if cluster.status() != Some("ACTIVE") {
        return Err(fatal(
            "ClusterNotActive",
            format!(
                "cluster {} is {}",
                p.cluster,
                cluster.status().unwrap_or("in an unknown state")
            ),
        ));
    }

    let services = ecs::describe_services(cloud, &p.cluster, &p.services).await?;
    for (name, s) in p.services.iter().zip(&services) {
        if s.status() != Some("ACTIVE") {
            return Err(fatal(
                "ServiceNotActiveException",
                format!(
                    "service {name} is {}",
                    s.status().unwrap_or("in an unknown state")
                ),
            ));
        }
    }
    match p.mode {
        Mode::ServicePair => check_service_pair(p, &services)?,
        Mode::TaskSet => check_task_set_service(p, &services)?,
    }

    let td = live_task_definition(p, &services, &prod)?;
    let out = cloud
        .call(
            "DescribeTaskDefinition",
            Effect::Read,
            cloud
                .ecs
                .describe_task_definition()
                .task_definition(td)
                .send(),
        )
        .await
        .map_err(|e| naming(e, format!("task definition {td} not found")))?;
    let names: Vec<&str> = out
        .task_definition()
        .map(|t| {
            t.container_definitions()
                .iter()
                .filter_map(|c| c.name())
                .collect()
        })
        .unwrap_or_default();
    if !names.contains(&p.container.as_str()) {
        return Err(fatal(
            "ContainerNotFound",
            format!(
                "container {} is not in the live task definition {td} (containers: {})",
                p.container,
                names.join(", ")
            ),
        ));
    }
    Ok(CommandResult::PreflightPassed)
}
