//! Elastic Load Balancing v2: listener weights (default action or a rule), target health.
//!
//! A weighted forward replaces only the forward action: authentication actions before it
//! and the forward's stickiness settings are kept. They come from a *template* of the
//! action learned from every read of the listener (preflight reads both listeners before
//! any write), so a write costs the write plus its read-back; with no template (a
//! restarted executor) the listener is read first, one call more.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Tag, TargetGroupStickinessConfig,
    TargetGroupTuple, TargetHealthStateEnum,
};
use bluegreen_core::{
    CommandError, CommandResult, ListenerRef, ListenerState, Name, Observation, TargetHealth,
    TargetWeight,
};

use super::AwsCloud;
use super::errors::Effect;

/// What a listener action holds besides the forward weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Template {
    /// Actions other than the forward (e.g. `authenticate-oidc`), in order.
    others: Vec<Action>,
    forward_order: Option<i32>,
    stickiness: Option<TargetGroupStickinessConfig>,
}

impl Template {
    pub(crate) fn of(actions: &[Action]) -> Template {
        let forward = actions
            .iter()
            .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward));
        Template {
            others: actions
                .iter()
                .filter(|a| {
                    a.r#type() != Some(&ActionTypeEnum::Forward)
                        && !matches!(
                            a.r#type(),
                            Some(ActionTypeEnum::FixedResponse | ActionTypeEnum::Redirect)
                        )
                })
                .cloned()
                .collect(),
            forward_order: forward.and_then(|a| a.order()),
            stickiness: forward
                .and_then(|a| a.forward_config())
                .and_then(|f| f.target_group_stickiness_config())
                .cloned(),
        }
    }

    /// The actions that forward with `weights`, everything else kept.
    fn actions(&self, weights: &[TargetWeight]) -> Vec<Action> {
        let tuples = weights
            .iter()
            .map(|w| {
                TargetGroupTuple::builder()
                    .target_group_arn(&w.target_group)
                    .weight(i32::try_from(w.weight).unwrap_or(i32::MAX))
                    .build()
            })
            .collect();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .set_order(self.forward_order)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(tuples))
                    .set_target_group_stickiness_config(self.stickiness.clone())
                    .build(),
            )
            .build();
        let mut actions = self.others.clone();
        actions.push(forward);
        actions
    }
}

/// The forward targets of a list of actions; empty when none forwards.
pub(crate) fn forwards_of(actions: &[Action]) -> ListenerState {
    let mut forwards = Vec::new();
    if let Some(forward) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    {
        let tuples = forward
            .forward_config()
            .map(|f| f.target_groups())
            .unwrap_or_default();
        if tuples.is_empty() {
            // A plain forward to one target group carries all the traffic.
            if let Some(tg) = forward.target_group_arn() {
                forwards.push(TargetWeight {
                    target_group: Name::from(tg),
                    weight: 1,
                });
            }
        }
        for t in tuples {
            if let Some(tg) = t.target_group_arn() {
                forwards.push(TargetWeight {
                    target_group: Name::from(tg),
                    // AWS: a tuple without a weight has weight 1.
                    weight: t
                        .weight()
                        .map(|w| u32::try_from(w).unwrap_or(0))
                        .unwrap_or(1),
                });
            }
        }
    }
    ListenerState { forwards }
}

/// The actions of a listener's default action, or of one of its rules (one call).
pub(crate) async fn read_actions(
    cloud: &AwsCloud,
    listener: &ListenerRef,
) -> Result<Vec<Action>, CommandError> {
    let actions = match &listener.rule_arn {
        None => {
            let out = cloud
                .call(
                    "DescribeListeners",
                    Effect::Read,
                    cloud
                        .elb
                        .describe_listeners()
                        .listener_arns(&listener.listener_arn)
                        .send(),
                )
                .await?;
            let found = out
                .listeners()
                .iter()
                .find(|l| l.listener_arn() == Some(listener.listener_arn.as_str()))
                .ok_or_else(|| {
                    CommandError::fatal(
                        "ListenerNotFound",
                        format!("listener {} not found", listener.listener_arn),
                    )
                })?;
            found.default_actions().to_vec()
        }
        Some(rule) => {
            let out = cloud
                .call(
                    "DescribeRules",
                    Effect::Read,
                    cloud.elb.describe_rules().rule_arns(rule).send(),
                )
                .await?;
            let found = out
                .rules()
                .iter()
                .find(|r| r.rule_arn() == Some(rule.as_str()))
                .ok_or_else(|| {
                    CommandError::fatal("RuleNotFound", format!("rule {rule} not found"))
                })?;
            found.actions().to_vec()
        }
    };
    cloud.remember_template(listener, Template::of(&actions));
    Ok(actions)
}

pub(crate) async fn observe_listener(
    cloud: &AwsCloud,
    listener: &ListenerRef,
) -> Result<CommandResult, CommandError> {
    let actions = read_actions(cloud, listener).await?;
    Ok(CommandResult::Observed(Observation::Listener(forwards_of(
        &actions,
    ))))
}

/// Write the weights, then read the listener back and return what AWS holds (the
/// machine compares it with what was asked and retries a mismatch).
pub(crate) async fn set_weights(
    cloud: &AwsCloud,
    listener: &ListenerRef,
    weights: &[TargetWeight],
) -> Result<CommandResult, CommandError> {
    let template = match cloud.template(listener) {
        Some(t) => t,
        None => Template::of(&read_actions(cloud, listener).await?),
    };
    let actions = template.actions(weights);
    match &listener.rule_arn {
        None => {
            cloud
                .call(
                    "ModifyListener",
                    Effect::IdempotentWrite,
                    cloud
                        .elb
                        .modify_listener()
                        .listener_arn(&listener.listener_arn)
                        .set_default_actions(Some(actions))
                        .send(),
                )
                .await?;
        }
        Some(rule) => {
            cloud
                .call(
                    "ModifyRule",
                    Effect::IdempotentWrite,
                    cloud
                        .elb
                        .modify_rule()
                        .rule_arn(rule)
                        .set_actions(Some(actions))
                        .send(),
                )
                .await?;
        }
    }
    let held = forwards_of(&read_actions(cloud, listener).await?);
    let asked: u32 = weights.iter().map(|w| w.weight).sum();
    let matches = held.total_weight() == asked
        && weights
            .iter()
            .all(|w| held.weight_of(&w.target_group) == w.weight);
    if !matches {
        tracing::warn!(
            listener = %listener.listener_arn,
            rule = ?listener.rule_arn,
            "read-back mismatch: wrote {weights:?}, the listener holds {:?}",
            held.forwards
        );
    }
    Ok(CommandResult::WeightsSet(held))
}

/// `AddTags` on each slot's target group: which one is live after the outcome. Tags are
/// desired state (writing them twice is harmless).
pub(crate) async fn tag_slots(
    cloud: &AwsCloud,
    target_groups: &[Name; 2],
    live_slot: usize,
    deployment: &str,
    outcome: &str,
) -> Result<CommandResult, CommandError> {
    for (slot, tg) in target_groups.iter().enumerate() {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let live = if slot == live_slot { "true" } else { "false" };
        cloud
            .call(
                "AddTags",
                Effect::IdempotentWrite,
                cloud
                    .elb
                    .add_tags()
                    .resource_arns(tg)
                    .tags(tag("bluegreen:live", live))
                    .tags(tag("bluegreen:slot", ["a", "b"][slot.min(1)]))
                    .tags(tag("bluegreen:deployment", deployment))
                    .tags(tag("bluegreen:outcome", outcome))
                    .send(),
            )
            .await?;
    }
    Ok(CommandResult::Tagged)
}

pub(crate) async fn target_health(
    cloud: &AwsCloud,
    target_group: &str,
) -> Result<CommandResult, CommandError> {
    let out = cloud
        .call(
            "DescribeTargetHealth",
            Effect::Read,
            cloud
                .elb
                .describe_target_health()
                .target_group_arn(target_group)
                .send(),
        )
        .await?;
    let mut health = TargetHealth::default();
    for d in out.target_health_descriptions() {
        let state = d.target_health().and_then(|h| h.state());
        if let Some(h) = d.target_health()
            && state != Some(&TargetHealthStateEnum::Healthy)
            && let Some(reason) = h.reason()
        {
            health.note_reason(
                state.map_or("unknown", |s| s.as_str()).to_string(),
                reason.as_str().to_string(),
                h.description().map(|d| d.to_string().into()),
                1,
            );
        }
        match state {
            Some(TargetHealthStateEnum::Healthy) => health.healthy += 1,
            Some(TargetHealthStateEnum::Unhealthy) => health.unhealthy += 1,
            Some(TargetHealthStateEnum::Initial) => health.initial += 1,
            Some(TargetHealthStateEnum::Draining | TargetHealthStateEnum::UnhealthyDraining) => {
                health.draining += 1
            }
            _ => health.other += 1,
        }
    }
    Ok(CommandResult::Observed(Observation::TargetHealth(health)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(tgs: &[(&str, Option<i32>)]) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(
                        tgs.iter()
                            .map(|(tg, w)| {
                                TargetGroupTuple::builder()
                                    .target_group_arn(*tg)
                                    .set_weight(*w)
                                    .build()
                            })
                            .collect(),
                    ))
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(60)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn forwards_read_weights_and_default_a_missing_weight_to_one() {
        let state = forwards_of(&[forward(&[("a", Some(90)), ("b", None)])]);
        assert_eq!(state.weight_of("a"), 90);
        assert_eq!(state.weight_of("b"), 1);
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("a")
            .build();
        assert_eq!(forwards_of(&[plain]).forwards.len(), 1);
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .build();
        assert!(forwards_of(&[fixed]).forwards.is_empty());
    }

    #[test]
    fn a_weight_write_keeps_authentication_and_stickiness() {
        let auth = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .build();
        let template = Template::of(&[auth.clone(), forward(&[("a", Some(1))])]);
        let actions = template.actions(&[
            TargetWeight {
                target_group: "a".into(),
                weight: 90,
            },
            TargetWeight {
                target_group: "b".into(),
                weight: 10,
            },
        ]);
        assert_eq!(actions[0], auth);
        assert_eq!(actions[1].order(), Some(2));
        let cfg = actions[1].forward_config().unwrap();
        assert_eq!(
            cfg.target_group_stickiness_config()
                .unwrap()
                .duration_seconds(),
            Some(60)
        );
        assert_eq!(forwards_of(&actions).weight_of("b"), 10);
    }
}
