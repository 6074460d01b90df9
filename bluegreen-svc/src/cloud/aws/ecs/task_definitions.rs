//! Task-definition revisions: find the one green should run, or register a copy of the
//! base with one container's image replaced.

use aws_sdk_ecs::types::{SortOrder, Tag, TaskDefinitionField, TaskDefinitionStatus};
use bluegreen_core::{CommandError, CommandResult, Name};
use sha2::{Digest, Sha256};

use super::super::AwsCloud;
use super::super::errors::Effect;
use super::{bad, unreadable_write};

/// Tag keys on the revisions the adapter registers.
pub const TAG_BASE: &str = "bluegreen:base";
pub const TAG_IMAGE: &str = "bluegreen:image";
/// FindTaskDefinition examines at most this many revisions newer than the base, newest
/// first (one `DescribeTaskDefinition` each). A revision copied from the base is always
/// newer than the base, so when the base is its family's newest revision — the usual
/// first deployment of an image — only the base and the list are read (two calls).
pub const FIND_LOOKBACK_REVISIONS: usize = 10;
/// ECS tag values are at most 256 characters.
const TAG_VALUE_LEN_MAX: usize = 256;

/// A tag value for `text`: itself when it fits, else `sha256:<hex>` of it (image
/// references and ARNs longer than 256 characters are rare but legal).
pub(crate) fn tag_value(text: &str) -> String {
    if text.len() <= TAG_VALUE_LEN_MAX {
        text.to_string()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }
}

pub(crate) use bluegreen_core::arn::family_and_revision;

/// `DescribeTaskDefinition` with tags.
async fn describe_task_definition(
    cloud: &AwsCloud,
    task_definition: &str,
) -> Result<
    aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput,
    CommandError,
> {
    cloud
        .call(
            "DescribeTaskDefinition",
            Effect::Read,
            cloud
                .ecs
                .describe_task_definition()
                .task_definition(task_definition)
                .include(TaskDefinitionField::Tags)
                .send(),
        )
        .await
}

/// The revision green should run without registering: the base itself when its
/// container already runs the image, else a copy registered before (by tags), looking
/// only at revisions newer than the base (a copy is always newer than what it copies).
pub(crate) async fn find_task_definition(
    cloud: &AwsCloud,
    base: &str,
    container: &str,
    image: &str,
) -> Result<CommandResult, CommandError> {
    let runs_image = |td: &aws_sdk_ecs::types::TaskDefinition| {
        td.container_definitions()
            .iter()
            .any(|c| c.name() == Some(container) && c.image() == Some(image))
    };
    let described = describe_task_definition(cloud, base).await?;
    let base_td = described.task_definition().ok_or_else(|| {
        bad(
            "BadResponse",
            format!("DescribeTaskDefinition {base} returned no task definition"),
        )
    })?;
    if runs_image(base_td) {
        return Ok(CommandResult::TaskDefinitionFound {
            arn: Some(
                base_td
                    .task_definition_arn()
                    .unwrap_or(base)
                    .to_string()
                    .into(),
            ),
        });
    }
    let base_arn = base_td.task_definition_arn().unwrap_or(base);
    let (family, base_revision) = family_and_revision(base_arn);
    let listed = cloud
        .call(
            "ListTaskDefinitions",
            Effect::Read,
            cloud
                .ecs
                .list_task_definitions()
                .family_prefix(family)
                .status(TaskDefinitionStatus::Active)
                .sort(SortOrder::Desc)
                .max_results(100)
                .send(),
        )
        .await?;
    let mut newer: Vec<(u32, &str)> = listed
        .task_definition_arns()
        .iter()
        .filter_map(|arn| match family_and_revision(arn) {
            (f, Some(rev)) if f == family && rev > base_revision.unwrap_or(0) => {
                Some((rev, arn.as_str()))
            }
            _ => None,
        })
        .collect();
    // Newest first whatever order the service listed them in.
    newer.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
    newer.truncate(FIND_LOOKBACK_REVISIONS);
    let (want_base, want_image) = (tag_value(base), tag_value(image));
    for (_, arn) in newer {
        let out = describe_task_definition(cloud, arn).await?;
        let tag = |key: &str| {
            out.tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        let Some(td) = out.task_definition() else {
            continue;
        };
        if tag(TAG_BASE) == Some(want_base.as_str())
            && tag(TAG_IMAGE) == Some(want_image.as_str())
            && runs_image(td)
        {
            return Ok(CommandResult::TaskDefinitionFound {
                arn: Some(Name::from(td.task_definition_arn().unwrap_or(arn))),
            });
        }
    }
    Ok(CommandResult::TaskDefinitionFound { arn: None })
}

pub(crate) async fn register_task_definition(
    cloud: &AwsCloud,
    base: &str,
    container: &str,
    image: &str,
) -> Result<CommandResult, CommandError> {
    let out = describe_task_definition(cloud, base).await?;
    let td = out.task_definition().ok_or_else(|| {
        bad(
            "BadResponse",
            format!("DescribeTaskDefinition {base} returned no task definition"),
        )
    })?;
    let family = td.family().ok_or_else(|| {
        bad(
            "BadResponse",
            format!("task definition {base} has no family"),
        )
    })?;
    let mut containers = td.container_definitions().to_vec();
    let names: Vec<&str> = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.name())
        .collect();
    let Some(target) = containers.iter_mut().find(|c| c.name() == Some(container)) else {
        return Err(bad(
            "ContainerNotFound",
            format!(
                "container {container} is not in task definition {base} (containers: {})",
                names.join(", ")
            ),
        ));
    };
    target.image = Some(image.to_string());
    let mut tags: Vec<Tag> = out
        .tags()
        .iter()
        .filter(|t| !t.key().unwrap_or_default().starts_with("bluegreen:"))
        .cloned()
        .collect();
    tags.push(Tag::builder().key(TAG_BASE).value(tag_value(base)).build());
    tags.push(
        Tag::builder()
            .key(TAG_IMAGE)
            .value(tag_value(image))
            .build(),
    );
    let request = cloud
        .ecs
        .register_task_definition()
        .family(family)
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .set_enable_fault_injection(td.enable_fault_injection)
        .set_tags(Some(tags));
    let registered = cloud
        .call("RegisterTaskDefinition", Effect::Write, request.send())
        .await?;
    let arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .ok_or_else(|| unreadable_write("RegisterTaskDefinition", "the new revision's ARN"))?;
    Ok(CommandResult::TaskDefinitionRegistered {
        arn: Name::from(arn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_definition_names_split_into_family_and_revision() {
        assert_eq!(
            family_and_revision("arn:aws:ecs:us-east-1:1:task-definition/web:12"),
            ("web", Some(12))
        );
        assert_eq!(family_and_revision("web:3"), ("web", Some(3)));
        assert_eq!(family_and_revision("web"), ("web", None));
    }

    #[test]
    fn long_tag_values_are_hashed_to_fit() {
        assert_eq!(tag_value("web:v2"), "web:v2");
        let long = "r".repeat(300);
        let v = tag_value(&long);
        assert!(v.starts_with("sha256:") && v.len() == 71, "{v}");
        assert_eq!(v, tag_value(&long));
    }
}
