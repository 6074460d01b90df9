//! The world's timings and limits (DESIGN §4a). Every figure is a knob; `aws()` draws
//! around published or commonly observed AWS behaviour, `fast()` compresses it to
//! seconds for the service's embedded default and its tests.

use serde::{Deserialize, Serialize};

/// A `lo..=hi` range of milliseconds a value is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanMs {
    pub lo: u64,
    pub hi: u64,
}

impl SpanMs {
    pub const fn new(lo: u64, hi: u64) -> Self {
        SpanMs { lo, hi }
    }
    pub const fn fixed(ms: u64) -> Self {
        SpanMs { lo: ms, hi: ms }
    }
}

/// One token bucket: `burst` tokens, refilled at `per_s` a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSpec {
    pub burst: u32,
    pub per_s: u32,
}

/// Per-account API rate limits, by bucket (see `api::Bucket`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiLimits {
    /// ECS DescribeServices / ListServices / DescribeClusters.
    pub ecs_describe: BucketSpec,
    /// ECS Create/Update/DeleteService and the task-set mutations.
    pub ecs_mutate: BucketSpec,
    /// ECS DescribeTasks / ListTasks.
    pub ecs_tasks: BucketSpec,
    /// ECS RegisterTaskDefinition.
    pub ecs_register: BucketSpec,
    /// ECS DescribeTaskDefinition / ListTaskDefinitions (not in DESIGN §4a: our assumption).
    pub ecs_task_definitions: BucketSpec,
    /// ELBv2 Describe*.
    pub elb_describe: BucketSpec,
    /// ELBv2 ModifyListener / ModifyRule (our assumption).
    pub elb_modify: BucketSpec,
    /// CloudWatch DescribeAlarms (our assumption).
    pub cw_describe_alarms: BucketSpec,
    /// CloudWatch GetMetricData (our assumption).
    pub cw_get_metric_data: BucketSpec,
}

impl ApiLimits {
    /// The same limits as the service's budget sees them (core's bucket order).
    pub fn rates(&self) -> bluegreen_core::budget::Rates {
        let r = |b: BucketSpec| bluegreen_core::budget::Rate {
            burst: b.burst,
            per_s: b.per_s,
        };
        bluegreen_core::budget::Rates([
            r(self.ecs_describe),
            r(self.ecs_mutate),
            r(self.ecs_tasks),
            r(self.ecs_register),
            r(self.ecs_task_definitions),
            r(self.elb_describe),
            r(self.elb_modify),
            r(self.cw_describe_alarms),
            r(self.cw_get_metric_data),
        ])
    }

    /// DESIGN §4a's figures, plus our assumptions where it is silent: core's
    /// `budget::Rates::AWS`, the one table of AWS's rates (the service's budget spends
    /// the same numbers the simulated account enforces).
    pub const fn aws() -> Self {
        use bluegreen_core::budget::{ApiBucket as B, Rate, Rates};
        const fn spec(b: B) -> BucketSpec {
            let Rate { burst, per_s } = Rates::AWS.0[b as usize];
            BucketSpec { burst, per_s }
        }
        ApiLimits {
            ecs_describe: spec(B::EcsDescribe),
            ecs_mutate: spec(B::EcsMutate),
            ecs_tasks: spec(B::EcsTasks),
            ecs_register: spec(B::EcsRegister),
            ecs_task_definitions: spec(B::EcsTaskDefinitions),
            elb_describe: spec(B::ElbDescribe),
            elb_modify: spec(B::ElbModify),
            cw_describe_alarms: spec(B::CwDescribeAlarms),
            cw_get_metric_data: spec(B::CwGetMetricData),
        }
    }
}

/// How the simulated AWS account behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldProfile {
    /// A task from PENDING to RUNNING (image pull included).
    pub task_start_ms: SpanMs,
    /// A crash-looping image's task exits this long after it started running.
    pub crash_after_ms: SpanMs,
    /// The ECS scheduler's delay before it replaces a stopped task.
    pub replace_delay_ms: SpanMs,
    /// ALB health check: interval and the consecutive successes / failures that flip a
    /// target healthy / unhealthy.
    pub health_interval_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Target-group deregistration delay (draining), drawn per target group.
    pub deregistration_delay_ms: SpanMs,
    /// A listener change becomes visible to traffic this long after the API call.
    pub listener_visible_ms: SpanMs,
    /// CloudWatch: alarm evaluation period and how late a period's data lands.
    pub alarm_period_ms: u64,
    pub metric_lag_ms: SpanMs,
    /// Alarm threshold: percent of a load balancer's requests answered 5xx by targets.
    pub alarm_5xx_percent: f64,
    /// Steady request rate per load balancer.
    pub requests_per_s: u32,
    /// Tasks the live environment runs when the world is seeded.
    pub initial_tasks: u32,
    pub limits: ApiLimits,
}

impl WorldProfile {
    /// DESIGN §4a: Fargate tasks start in 20–90 s, ALB checks every 30 s with thresholds
    /// 5 / 2 (≈150 s to healthy), 300 s deregistration delay, listener changes visible
    /// within seconds, CloudWatch periods of 60 s landing 1–2 min late.
    pub fn aws() -> Self {
        WorldProfile {
            task_start_ms: SpanMs::new(20_000, 90_000),
            crash_after_ms: SpanMs::new(5_000, 30_000),
            replace_delay_ms: SpanMs::new(1_000, 15_000),
            health_interval_ms: 30_000,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            deregistration_delay_ms: SpanMs::fixed(300_000),
            listener_visible_ms: SpanMs::new(1_000, 5_000),
            alarm_period_ms: 60_000,
            metric_lag_ms: SpanMs::new(60_000, 120_000),
            alarm_5xx_percent: 1.0,
            requests_per_s: 200,
            initial_tasks: 3,
            limits: ApiLimits::aws(),
        }
    }

    /// Seconds instead of minutes, for the service's embedded default and its tests:
    /// tasks start in 1–3 s, health checks every 1 s, deregistration in 2 s, alarms on
    /// 10 s periods landing 2–5 s late (so a `5xx` image rolls back within a minute).
    pub fn fast() -> Self {
        WorldProfile {
            task_start_ms: SpanMs::new(1_000, 3_000),
            crash_after_ms: SpanMs::new(2_000, 6_000),
            replace_delay_ms: SpanMs::new(200, 1_000),
            health_interval_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            deregistration_delay_ms: SpanMs::fixed(2_000),
            listener_visible_ms: SpanMs::new(100, 1_000),
            alarm_period_ms: 10_000,
            metric_lag_ms: SpanMs::new(2_000, 5_000),
            alarm_5xx_percent: 1.0,
            requests_per_s: 200,
            initial_tasks: 3,
            limits: ApiLimits::aws(),
        }
    }

    /// The same account as the plan's duration model sees it.
    pub fn plan_timings(&self) -> bluegreen_core::plan::Timings {
        bluegreen_core::plan::Timings {
            task_start_ms: (self.task_start_ms.lo, self.task_start_ms.hi),
            health_interval_ms: self.health_interval_ms,
            healthy_threshold: self.healthy_threshold,
            deregistration_delay_ms: (self.deregistration_delay_ms.lo
                + self.deregistration_delay_ms.hi)
                / 2,
            // Two network legs of 5–50 ms (the harness's default latency).
            api_ms: 55,
        }
    }

    /// Longest a listener change takes to reach traffic.
    pub fn listener_visible_max_ms(&self) -> u64 {
        self.listener_visible_ms.hi
    }

    /// Time for a new, healthy target to pass its health checks (worst case).
    pub fn time_to_healthy_ms(&self) -> u64 {
        self.health_interval_ms * u64::from(self.healthy_threshold)
    }
}

impl Default for WorldProfile {
    fn default() -> Self {
        Self::aws()
    }
}
