//! The AWS adapter: [`bluegreen_core::Cloud`] over the real AWS SDK.
//!
//! [`AwsCloud`] executes every [`CommandKind`] except `CallHook` (the service wraps any
//! cloud with its HTTP hook client) with ECS, Elastic Load Balancing v2 and CloudWatch:
//! one file per service (`ecs.rs`, `elbv2.rs`, `cloudwatch.rs`), plus `preflight.rs` (the
//! resource check) and `errors.rs` (failure classification). `docs/commands.md` lists the
//! calls each command makes.
//!
//! ## Retries and timeouts
//! The SDK's own retries are **off** ([`RetryConfig::disabled`]): every request is sent
//! once. The machine owns the retry schedule (seeded backoff, visible in simulated time),
//! so a write is never re-sent behind its back — in particular never without its
//! idempotency token, and never `RegisterTaskDefinition`, which has none — and the call
//! counts in `BENCHMARKS.md` are exact. Each attempt is bounded by [`ATTEMPT_TIMEOUT`]
//! (connect: [`CONNECT_TIMEOUT`]), well inside the machine's smallest command timeout
//! budget for one call.
//!
//! ## Observability
//! Every AWS call increments `bluegreen_aws_calls_total{operation, result}` (result `ok`,
//! `throttled` or `error`) and runs in a `aws_call` tracing span inside the command's
//! `aws_command` span.

mod alarm_batch;
mod cloudwatch;
mod ecs;
mod elbv2;
mod env;
mod errors;
mod preflight;
mod scaling;

pub use env::{AwsKind, build};

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bluegreen_core::{Cloud, Command, CommandError, CommandKind, CommandResult, ListenerRef};
use tracing::Instrument;

use errors::Effect;

pub use cloudwatch::ALARM_NAMES_PER_CALL;
pub use ecs::{FIND_LOOKBACK_REVISIONS, TAG_BASE, TAG_IMAGE};

/// Connect timeout of one request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Limit on one request, from sending to the last byte of the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Most listener templates remembered (see `elbv2.rs`); the cache is cleared when full.
const LISTENER_TEMPLATES_MAX: usize = 256;

/// The AWS implementation of [`Cloud`]. Cheap to clone (the SDK clients and the call
/// counters are shared).
#[derive(Clone)]
pub struct AwsCloud {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// Application Auto Scaling (`PlaceScaling`); `None` in adapters built from other
    /// clients without one (`from_clients`), which then have no scaling to move.
    autoscaling: Option<aws_sdk_applicationautoscaling::Client>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Calls made, by operation name.
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// What each listener action holds besides the forward weights (authentication
    /// actions, stickiness), learned from every read of it.
    templates: Mutex<HashMap<ListenerRef, elbv2::Template>>,
    /// `DescribeServices` reads waiting to share a call, per cluster.
    service_batches: ecs::batch::ServiceBatches,
    /// `DescribeAlarms` reads waiting to share a call.
    alarm_batches: alarm_batch::AlarmBatches,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud")
            .field("calls", &self.calls_by_operation())
            .finish_non_exhaustive()
    }
}

impl AwsCloud {
    /// Clients for ECS, ELBv2, CloudWatch and Application Auto Scaling from one SDK configuration (region,
    /// credentials, endpoint), with SDK retries off and bounded timeouts.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let ecs = aws_sdk_ecs::config::Builder::from(config);
        let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(config);
        let cw = aws_sdk_cloudwatch::config::Builder::from(config);
        let aas = aws_sdk_applicationautoscaling::config::Builder::from(config);
        Self::from_configs(ecs, elb, cw).with_autoscaling_config(aas)
    }

    /// Add an Application Auto Scaling client (tests point it at the emulator); its
    /// retry and timeout settings are replaced with the adapter's.
    pub fn with_autoscaling(self, client: aws_sdk_applicationautoscaling::Client) -> Self {
        self.with_autoscaling_config(client.config().to_builder())
    }

    fn with_autoscaling_config(
        mut self,
        aas: aws_sdk_applicationautoscaling::config::Builder,
    ) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        self.autoscaling = Some(aws_sdk_applicationautoscaling::Client::from_conf(
            aas.retry_config(RetryConfig::disabled())
                .timeout_config(timeouts)
                .build(),
        ));
        self
    }

    /// [`AwsCloud::new`] with the standard `aws-config` chain: region, credentials and
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`) from the environment,
    /// profile or instance metadata.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(&config)
    }

    /// From existing clients (tests point each service elsewhere). Their retry and
    /// timeout settings are replaced with the adapter's.
    pub fn from_clients(
        ecs: aws_sdk_ecs::Client,
        elb: aws_sdk_elasticloadbalancingv2::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
    ) -> Self {
        Self::from_configs(
            ecs.config().to_builder(),
            elb.config().to_builder(),
            cloudwatch.config().to_builder(),
        )
    }

    fn from_configs(
        ecs: aws_sdk_ecs::config::Builder,
        elb: aws_sdk_elasticloadbalancingv2::config::Builder,
        cw: aws_sdk_cloudwatch::config::Builder,
    ) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        AwsCloud {
            ecs: aws_sdk_ecs::Client::from_conf(
                ecs.retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                elb.retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                cw.retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts)
                    .build(),
            ),
            autoscaling: None,
            shared: Arc::default(),
        }
    }

    /// AWS calls this adapter (and its clones) made so far.
    pub fn calls_total(&self) -> u64 {
        self.calls_by_operation().values().sum()
    }

    /// AWS calls made so far by operation name (`DescribeServices`, …).
    pub fn calls_by_operation(&self) -> BTreeMap<&'static str, u64> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// One AWS call: counted, traced, and its error classified.
    async fn call<T, E>(
        &self,
        op: &'static str,
        effect: Effect,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CommandError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        *self
            .shared
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(op)
            .or_default() += 1;
        let span = tracing::debug_span!("aws_call", operation = op, result = tracing::field::Empty);
        let outcome = request.instrument(span.clone()).await;
        let (result, mapped) = match outcome {
            Ok(value) => ("ok", Ok(value)),
            Err(err) => {
                let error = errors::classify(op, effect, &err);
                let label = if errors::is_throttling(&error.code) {
                    "throttled"
                } else {
                    "error"
                };
                tracing::debug!(parent: &span, code = %error.code, class = ?error.class, "{}", error.message);
                (label, Err(error))
            }
        };
        span.record("result", result);
        metrics::counter!("bluegreen_aws_calls_total", "operation" => op, "result" => result)
            .increment(1);
        mapped
    }

    fn template(&self, listener: &ListenerRef) -> Option<elbv2::Template> {
        self.shared
            .templates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(listener)
            .cloned()
    }

    fn remember_template(&self, listener: &ListenerRef, template: elbv2::Template) {
        let mut templates = self
            .shared
            .templates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if templates.len() >= LISTENER_TEMPLATES_MAX && !templates.contains_key(listener) {
            templates.clear();
        }
        templates.insert(listener.clone(), template);
    }

    async fn dispatch(&self, command: &Command) -> Result<CommandResult, CommandError> {
        use bluegreen_core::{EnsureGreen, Observe};
        match &command.kind {
            CommandKind::Preflight(p) => preflight::run(self, p).await,
            CommandKind::FindTaskDefinition {
                base,
                container,
                image,
            } => ecs::find_task_definition(self, base, container, image).await,
            CommandKind::RegisterTaskDefinition {
                base,
                container,
                image,
            } => ecs::register_task_definition(self, base, container, image).await,
            CommandKind::EnsureGreen(EnsureGreen::Service {
                cluster,
                service,
                task_definition,
                desired_count,
            }) => {
                ecs::ensure_green_service(self, cluster, service, task_definition, *desired_count)
                    .await
            }
            CommandKind::EnsureGreen(green @ EnsureGreen::TaskSet { .. }) => {
                ecs::ensure_green_task_set(self, green, &command.id.client_token()).await
            }
            CommandKind::ScaleEnvironment {
                cluster,
                service,
                desired_count,
            } => ecs::scale(self, cluster, service, *desired_count).await,
            CommandKind::DeleteEnvironment {
                cluster,
                service,
                task_set,
            } => ecs::delete_task_set(self, cluster, service, task_set).await,
            CommandKind::SetPrimaryTaskSet {
                cluster,
                service,
                task_set,
            } => ecs::set_primary(self, cluster, service, task_set).await,
            CommandKind::SetListenerWeights { listener, weights } => {
                elbv2::set_weights(self, listener, weights).await
            }
            CommandKind::TagSlots {
                target_groups,
                live_slot,
                deployment,
                outcome,
            } => elbv2::tag_slots(self, target_groups, *live_slot, deployment, outcome).await,
            CommandKind::PlaceScaling {
                cluster,
                services,
                live_slot,
            } => scaling::place(self, cluster, services, *live_slot).await,
            CommandKind::Observe(Observe::Listener(listener)) => {
                elbv2::observe_listener(self, listener).await
            }
            CommandKind::Observe(Observe::Service {
                cluster,
                service,
                failures,
                also,
            }) => {
                ecs::observe_service(self, cluster, service, failures.as_ref(), also.as_deref())
                    .await
            }
            CommandKind::Observe(Observe::TargetHealth { target_group }) => {
                elbv2::target_health(self, target_group).await
            }
            CommandKind::Observe(Observe::Alarms { names }) => {
                cloudwatch::alarms(self, names).await
            }
            CommandKind::Observe(Observe::Metrics(request)) => {
                cloudwatch::metrics(self, request).await
            }
            CommandKind::CallHook(hook) => Err(CommandError::fatal(
                "UnsupportedCommand",
                format!(
                    "the AWS adapter does not call hooks (hook {}); the service's hook client handles call-hook",
                    hook.name
                ),
            )),
        }
    }
}

impl Cloud for AwsCloud {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let span = tracing::info_span!(
            "aws_command",
            id = %command.id,
            kind = command.kind.name(),
            attempt = command.attempt
        );
        async {
            let result = self.dispatch(command).await;
            match &result {
                Ok(_) => tracing::debug!("done"),
                Err(e) => tracing::warn!(class = ?e.class, code = %e.code, "{}", e.message),
            }
            result
        }
        .instrument(span)
        .await
    }
}

/// Names out of ARNs (`…:service/prod/web-a` → `web-a`, `…:targetgroup/web-b/123` →
/// `web-b`), or a name as is: core's one ARN module.
pub(crate) use bluegreen_core::arn::short_name;

/// A target group's name from its ARN (`arn:…:targetgroup/<name>/<id>`).
pub(crate) fn target_group_name(arn: &str) -> &str {
    short_name(arn)
}

/// Non-negative AWS counts as `u32` (AWS models counts as `i32`).
pub(crate) fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_out_of_arns() {
        assert_eq!(
            target_group_name("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-b/0123"),
            "web-b"
        );
        assert_eq!(
            short_name("arn:aws:ecs:us-east-1:1:service/prod/web-a"),
            "web-a"
        );
        assert_eq!(short_name("web-a"), "web-a");
        assert_eq!(count(-3), 0);
        assert_eq!(count(7), 7);
    }
}
