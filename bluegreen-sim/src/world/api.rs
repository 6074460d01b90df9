//! The API surface: which AWS calls a command makes, per-account token buckets
//! (DESIGN §4a) so throttling emerges from load, call accounting, and AWS-like errors.

use bluegreen_core::Timestamp;
use serde::Serialize;

use super::profile::{ApiLimits, BucketSpec};

/// The AWS operations the simulated adapter makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ApiCall {
    DescribeListeners,
    DescribeRules,
    DescribeTargetGroups,
    DescribeTargetHealth,
    ModifyListener,
    ModifyRule,
    DescribeClusters,
    DescribeServices,
    UpdateService,
    CreateTaskSet,
    DeleteTaskSet,
    UpdateServicePrimaryTaskSet,
    ListTasks,
    DescribeTasks,
    ListTaskDefinitions,
    DescribeTaskDefinition,
    RegisterTaskDefinition,
    DescribeAlarms,
    GetMetricData,
    AddTags,
}

pub const API_CALLS: usize = 20;

impl ApiCall {
    pub const ALL: [ApiCall; API_CALLS] = [
        ApiCall::DescribeListeners,
        ApiCall::DescribeRules,
        ApiCall::DescribeTargetGroups,
        ApiCall::DescribeTargetHealth,
        ApiCall::ModifyListener,
        ApiCall::ModifyRule,
        ApiCall::DescribeClusters,
        ApiCall::DescribeServices,
        ApiCall::UpdateService,
        ApiCall::CreateTaskSet,
        ApiCall::DeleteTaskSet,
        ApiCall::UpdateServicePrimaryTaskSet,
        ApiCall::ListTasks,
        ApiCall::DescribeTasks,
        ApiCall::ListTaskDefinitions,
        ApiCall::DescribeTaskDefinition,
        ApiCall::RegisterTaskDefinition,
        ApiCall::DescribeAlarms,
        ApiCall::GetMetricData,
        ApiCall::AddTags,
    ];

    fn bucket(self) -> usize {
        use ApiCall as A;
        match self {
            A::DescribeClusters | A::DescribeServices => 0,
            A::UpdateService
            | A::CreateTaskSet
            | A::DeleteTaskSet
            | A::UpdateServicePrimaryTaskSet => 1,
            A::ListTasks | A::DescribeTasks => 2,
            A::RegisterTaskDefinition => 3,
            A::ListTaskDefinitions | A::DescribeTaskDefinition => 4,
            A::DescribeListeners
            | A::DescribeRules
            | A::DescribeTargetGroups
            | A::DescribeTargetHealth => 5,
            // ELBv2's writes share one bucket here (AWS: AddTags has its own, larger one).
            A::ModifyListener | A::ModifyRule | A::AddTags => 6,
            A::DescribeAlarms => 7,
            A::GetMetricData => 8,
        }
    }

    /// Does the call change anything at AWS?
    pub fn is_write(self) -> bool {
        matches!(
            self,
            ApiCall::ModifyListener
                | ApiCall::ModifyRule
                | ApiCall::UpdateService
                | ApiCall::CreateTaskSet
                | ApiCall::DeleteTaskSet
                | ApiCall::UpdateServicePrimaryTaskSet
                | ApiCall::RegisterTaskDefinition
                | ApiCall::AddTags
        )
    }
}

const BUCKETS: usize = 9;

#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    /// Thousandths of a token, so refill needs no floating point.
    milli: u64,
    cap_milli: u64,
    /// Refill in thousandths of a token per millisecond (= tokens per second).
    per_s: u64,
    /// `milli` is as of this time: a bucket refills when it is used, not on every event
    /// (one step of `elapsed` or several smaller ones give the same level, since the cap
    /// is applied to a sum of non-negative terms).
    at: Timestamp,
}

impl TokenBucket {
    fn new(spec: BucketSpec, now: Timestamp) -> Self {
        TokenBucket {
            milli: u64::from(spec.burst) * 1000,
            cap_milli: u64::from(spec.burst) * 1000,
            per_s: u64::from(spec.per_s),
            at: now,
        }
    }

    /// The level at `now` (not before `at`).
    fn level(&self, now: Timestamp) -> u64 {
        let elapsed_ms = now.ms_since(self.at);
        self.milli
            .saturating_add(elapsed_ms.saturating_mul(self.per_s))
            .min(self.cap_milli)
    }

    fn settle(&mut self, now: Timestamp) -> &mut Self {
        if now > self.at {
            self.milli = self.level(now);
            self.at = now;
        }
        self
    }
}

/// Calls made, by operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    pub calls: [u64; API_CALLS],
    pub throttled: [u64; API_CALLS],
}

impl CallStats {
    pub fn total(&self) -> u64 {
        self.calls.iter().sum()
    }
    pub fn of(&self, call: ApiCall) -> u64 {
        self.calls[call as usize]
    }
}

#[derive(Clone, Debug)]
pub struct Api {
    buckets: [TokenBucket; BUCKETS],
    /// The world's time: buckets settle to it when used.
    now: Timestamp,
    /// When false, buckets never run dry (tests of other behaviour).
    pub throttling: bool,
    pub stats: CallStats,
    /// Calls the last command made.
    pub last_calls: u32,
}

impl Api {
    pub fn new(limits: &ApiLimits, now: Timestamp) -> Self {
        let specs = [
            limits.ecs_describe,
            limits.ecs_mutate,
            limits.ecs_tasks,
            limits.ecs_register,
            limits.ecs_task_definitions,
            limits.elb_describe,
            limits.elb_modify,
            limits.cw_describe_alarms,
            limits.cw_get_metric_data,
        ];
        Api {
            buckets: specs.map(|spec| TokenBucket::new(spec, now)),
            now,
            throttling: true,
            stats: CallStats::default(),
            last_calls: 0,
        }
    }

    /// Time moves on: every bucket refills to `now`'s level when it is next used.
    pub(crate) fn refill(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    /// Make one call: `false` when its bucket is empty (the call is throttled; it still
    /// counts as a call made).
    pub(crate) fn call(&mut self, call: ApiCall) -> bool {
        self.last_calls += 1;
        self.stats.calls[call as usize] += 1;
        let b = self.buckets[call.bucket()].settle(self.now);
        if !self.throttling || b.milli >= 1000 {
            b.milli = b.milli.saturating_sub(1000);
            true
        } else {
            self.stats.throttled[call as usize] += 1;
            false
        }
    }

    /// Another client of the same account uses `tokens` of `call`'s bucket (a noisy
    /// neighbour): throttling that is not our own doing.
    pub fn consume(&mut self, call: ApiCall, tokens: u32) {
        let b = self.buckets[call.bucket()].settle(self.now);
        b.milli = b.milli.saturating_sub(u64::from(tokens) * 1000);
    }

    /// Tokens left in `call`'s bucket.
    pub fn tokens(&self, call: ApiCall) -> u64 {
        self.buckets[call.bucket()].level(self.now) / 1000
    }
}

/// AWS-like errors, classified as the adapter classifies them.
pub mod err {
    use bluegreen_core::CommandError;

    pub fn fatal(code: &str, message: impl Into<String>) -> CommandError {
        CommandError::fatal(code, message)
    }

    pub fn throttled(call: super::ApiCall) -> CommandError {
        CommandError::throttled("ThrottlingException", format!("{call:?}: Rate exceeded"))
    }

    /// A write went through but a later call of the same command was throttled: the
    /// adapter cannot tell the caller it succeeded.
    pub fn throttled_after_write(call: super::ApiCall) -> CommandError {
        CommandError::ambiguous(
            "ThrottlingException",
            format!("{call:?}: Rate exceeded after the write was applied"),
        )
    }
}
