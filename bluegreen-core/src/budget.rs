//! The account-wide API budget (DESIGN §5 "API budget"): one token bucket per AWS rate
//! class, at AWS's published rates scaled by the share of the account this service may
//! use and split across the live replicas; and a reserve in every bucket that only
//! rollback may draw on, so forward progress never starves a rollback.
//!
//! A value, like the machine: every entry point takes `now`, nothing reads a clock. The
//! service keeps one per (account, region) and takes tokens before each AWS call; the
//! simulator keeps one per simulated account and takes a command's [`Cost`] before the
//! command goes on the wire. A call that cannot go yet learns when it can
//! ([`Budget::try_take`] → `Err(ready_at)`) and waits for that, instead of being
//! throttled by AWS and retried with backoff.

use serde::{Deserialize, Serialize};

use crate::command::{CommandKind, EnsureGreen, Observe};
use crate::io::PhaseName;
use crate::time::Timestamp;

/// AWS's rate classes, as the ECS, ELBv2 and CloudWatch APIs bucket their calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiBucket {
    /// ECS DescribeServices / DescribeClusters / ListServices.
    EcsDescribe,
    /// ECS Create/Update/DeleteService and the task-set writes.
    EcsMutate,
    /// ECS ListTasks / DescribeTasks.
    EcsTasks,
    /// ECS RegisterTaskDefinition.
    EcsRegister,
    /// ECS DescribeTaskDefinition / ListTaskDefinitions.
    EcsTaskDefinitions,
    /// ELBv2 Describe*.
    ElbDescribe,
    /// ELBv2 ModifyListener / ModifyRule / AddTags.
    ElbModify,
    /// CloudWatch DescribeAlarms.
    CwDescribeAlarms,
    /// CloudWatch GetMetricData.
    CwGetMetricData,
}

pub const BUCKETS: usize = 9;

impl ApiBucket {
    pub const ALL: [ApiBucket; BUCKETS] = [
        ApiBucket::EcsDescribe,
        ApiBucket::EcsMutate,
        ApiBucket::EcsTasks,
        ApiBucket::EcsRegister,
        ApiBucket::EcsTaskDefinitions,
        ApiBucket::ElbDescribe,
        ApiBucket::ElbModify,
        ApiBucket::CwDescribeAlarms,
        ApiBucket::CwGetMetricData,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApiBucket::EcsDescribe => "ecs-describe",
            ApiBucket::EcsMutate => "ecs-mutate",
            ApiBucket::EcsTasks => "ecs-tasks",
            ApiBucket::EcsRegister => "ecs-register",
            ApiBucket::EcsTaskDefinitions => "ecs-task-definitions",
            ApiBucket::ElbDescribe => "elb-describe",
            ApiBucket::ElbModify => "elb-modify",
            ApiBucket::CwDescribeAlarms => "cw-describe-alarms",
            ApiBucket::CwGetMetricData => "cw-get-metric-data",
        }
    }

    /// The bucket an AWS operation (its API name, e.g. `DescribeServices`) draws on;
    /// `None` for an operation outside the three APIs' throttled set.
    pub fn of_operation(operation: &str) -> Option<ApiBucket> {
        use ApiBucket as B;
        Some(match operation {
            "DescribeServices" | "DescribeClusters" | "ListServices" => B::EcsDescribe,
            "UpdateService"
            | "CreateService"
            | "DeleteService"
            | "CreateTaskSet"
            | "DeleteTaskSet"
            | "UpdateTaskSet"
            | "UpdateServicePrimaryTaskSet" => B::EcsMutate,
            "ListTasks" | "DescribeTasks" => B::EcsTasks,
            "RegisterTaskDefinition" => B::EcsRegister,
            "DescribeTaskDefinition" | "ListTaskDefinitions" => B::EcsTaskDefinitions,
            "DescribeListeners"
            | "DescribeRules"
            | "DescribeTargetGroups"
            | "DescribeTargetHealth"
            | "DescribeLoadBalancers"
            | "DescribeTags" => B::ElbDescribe,
            "ModifyListener" | "ModifyRule" | "AddTags" | "RemoveTags" => B::ElbModify,
            "DescribeAlarms" => B::CwDescribeAlarms,
            "GetMetricData" => B::CwGetMetricData,
            _ => return None,
        })
    }
}

/// One bucket's published rate: `burst` tokens, refilled at `per_s` a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub burst: u32,
    pub per_s: u32,
}

/// A rate per bucket, indexed by `ApiBucket as usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates(pub [Rate; BUCKETS]);

impl Rates {
    /// DESIGN §4a and §5: ECS's and ELBv2's published per-account rates; where AWS
    /// publishes none (task definitions, CloudWatch) the simulator's assumptions.
    pub const AWS: Rates = Rates([
        Rate {
            burst: 100,
            per_s: 20,
        },
        Rate {
            burst: 50,
            per_s: 5,
        },
        Rate {
            burst: 100,
            per_s: 20,
        },
        Rate {
            burst: 20,
            per_s: 1,
        },
        Rate {
            burst: 100,
            per_s: 20,
        },
        Rate {
            burst: 40,
            per_s: 10,
        },
        Rate {
            burst: 20,
            per_s: 5,
        },
        Rate {
            burst: 20,
            per_s: 9,
        },
        Rate {
            burst: 50,
            per_s: 50,
        },
    ]);

    pub fn of(&self, bucket: ApiBucket) -> Rate {
        self.0[bucket as usize]
    }
}

/// Tokens a command takes, per bucket: an upper bound of the calls an executor makes
/// for it (`docs/commands.md`), so a command that went out within budget is never
/// throttled by its own calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost(pub [u8; BUCKETS]);

impl Cost {
    pub fn add(&mut self, bucket: ApiBucket, n: u8) {
        let c = &mut self.0[bucket as usize];
        *c = c.saturating_add(n);
    }

    pub fn one(bucket: ApiBucket) -> Cost {
        let mut c = Cost::default();
        c.add(bucket, 1);
        c
    }

    pub fn of(&self, bucket: ApiBucket) -> u8 {
        self.0[bucket as usize]
    }

    pub fn total(&self) -> u32 {
        self.0.iter().map(|&n| u32::from(n)).sum()
    }

    /// Do the two take from a common bucket? A forward command waiting for a bucket
    /// keeps its place in line against later ones that would take from the same bucket
    /// (else a large cost, a preflight's, starves behind a stream of small polls).
    pub fn shares_bucket_with(&self, other: &Cost) -> bool {
        self.0.iter().zip(&other.0).any(|(&a, &b)| a > 0 && b > 0)
    }

    /// What `kind` costs at most.
    pub fn of_command(kind: &CommandKind) -> Cost {
        use ApiBucket as B;
        let mut c = Cost::default();
        match kind {
            CommandKind::Preflight(p) => {
                c.add(B::ElbDescribe, 2); // the listener (and its rule)
                if let Some(test) = &p.test_listener {
                    c.add(B::ElbDescribe, 1 + u8::from(test.rule_arn.is_some()));
                }
                c.add(B::ElbDescribe, 1); // both target groups in one call
                c.add(B::EcsDescribe, 2); // the cluster, the services
                c.add(B::EcsTaskDefinitions, 2); // the live task definition(s)
            }
            CommandKind::FindTaskDefinition { .. } => {
                // The base, the family's list, and the newest few tagged revisions.
                c.add(B::EcsTaskDefinitions, 2 + FIND_LOOKBACK_REVISIONS);
            }
            CommandKind::RegisterTaskDefinition { .. } => {
                c.add(B::EcsTaskDefinitions, 1);
                c.add(B::EcsRegister, 1);
            }
            CommandKind::EnsureGreen(EnsureGreen::Service { .. }) => c.add(B::EcsMutate, 1),
            CommandKind::EnsureGreen(EnsureGreen::TaskSet { .. }) => {
                c.add(B::EcsDescribe, 1);
                c.add(B::EcsMutate, 1);
            }
            CommandKind::ScaleEnvironment { .. }
            | CommandKind::DeleteEnvironment { .. }
            | CommandKind::SetPrimaryTaskSet { .. } => c.add(B::EcsMutate, 1),
            CommandKind::SetListenerWeights { .. } => {
                // The template (first write for a listener), the write, the read-back.
                c.add(B::ElbDescribe, 2);
                c.add(B::ElbModify, 1);
            }
            CommandKind::TagSlots { .. } => c.add(B::ElbModify, 2),
            // Application Auto Scaling has buckets of its own, outside this budget.
            CommandKind::PlaceScaling { .. } => {}
            CommandKind::Observe(o) => match o {
                Observe::Listener(_) | Observe::TargetHealth { .. } => c.add(B::ElbDescribe, 1),
                Observe::Service { failures, .. } => {
                    c.add(B::EcsDescribe, 1);
                    if failures.is_some() {
                        c.add(B::EcsTasks, 2);
                    }
                }
                Observe::Alarms { names } => {
                    let calls = names.len().div_ceil(ALARM_NAMES_PER_CALL).max(1);
                    c.add(B::CwDescribeAlarms, u8::try_from(calls).unwrap_or(u8::MAX));
                }
                Observe::Metrics(_) => c.add(B::CwGetMetricData, 1),
            },
            CommandKind::CallHook(_) => {}
        }
        c
    }
}

/// Revisions `FindTaskDefinition` looks back through (the AWS adapter's bound).
pub const FIND_LOOKBACK_REVISIONS: u8 = 5;
/// DescribeAlarms takes at most this many names a call.
pub const ALARM_NAMES_PER_CALL: usize = 100;
/// DescribeServices takes at most this many services a call (one cluster).
pub const SERVICES_PER_CALL: usize = 10;

/// Who asks: forward progress, or a rollback (which may use the reserve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Forward,
    Rollback,
}

impl Role {
    /// A deployment's role in `phase`: a rollback's commands may use the reserve;
    /// everything else is forward progress.
    pub fn of_phase(phase: PhaseName) -> Role {
        match phase {
            PhaseName::Rollback => Role::Rollback,
            _ => Role::Forward,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Forward => "forward",
            Role::Rollback => "rollback",
        }
    }
}

/// How much of the account the budget spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetShape {
    /// Thousandths of AWS's rates this service may use (the rest is left to other
    /// callers in the account: consoles, pipelines, autoscaling). 1–1000.
    pub share_permille: u32,
    /// Thousandths of each bucket kept for rollback. 0–500.
    pub reserve_permille: u32,
}

impl BudgetShape {
    /// 80 % of the account, a fifth of every bucket kept for rollbacks.
    pub const DEFAULT: BudgetShape = BudgetShape {
        share_permille: 800,
        reserve_permille: 200,
    };
}

/// Millionths of a token: refill at any share and split stays integer.
const MICRO: u64 = 1_000_000;
/// A bound on replicas sharing one budget (a split finer than this is meaningless).
pub const REPLICAS_MAX: u32 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    level_micro: u64,
    cap_micro: u64,
    /// Micro-tokens per millisecond (= tokens per second × 1000 / 1000).
    refill_micro_per_ms: u64,
    reserve_micro: u64,
}

/// Token buckets for one account and region, as one replica spends them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    rates: Rates,
    shape: BudgetShape,
    replicas: u32,
    buckets: [Bucket; BUCKETS],
    last: Timestamp,
    /// Tokens taken, by role (for reports and metrics).
    pub taken: [u64; 2],
}

impl Budget {
    /// A full budget for one replica.
    pub fn new(rates: Rates, shape: BudgetShape, now: Timestamp) -> Budget {
        let shape = BudgetShape {
            share_permille: shape.share_permille.clamp(1, 1000),
            reserve_permille: shape.reserve_permille.min(500),
        };
        let mut b = Budget {
            rates,
            shape,
            replicas: 1,
            buckets: [Bucket {
                level_micro: 0,
                cap_micro: 0,
                refill_micro_per_ms: 0,
                reserve_micro: 0,
            }; BUCKETS],
            last: now,
            taken: [0; 2],
        };
        b.reshape();
        for bucket in &mut b.buckets {
            bucket.level_micro = bucket.cap_micro;
        }
        b
    }

    pub fn shape(&self) -> BudgetShape {
        self.shape
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// `n` live replicas now share the account's budget: each gets `1/n` of every
    /// bucket's size and refill. A bucket holding more than its new size is cut to it.
    pub fn set_replicas(&mut self, now: Timestamp, n: u32) {
        let n = n.clamp(1, REPLICAS_MAX);
        if n == self.replicas {
            return;
        }
        self.refill(now);
        self.replicas = n;
        self.reshape();
    }

    fn reshape(&mut self) {
        let (share, n) = (
            u64::from(self.shape.share_permille),
            u64::from(self.replicas),
        );
        for (bucket, rate) in self.buckets.iter_mut().zip(self.rates.0) {
            // At least one whole token: a bucket too small to hold one call would
            // never let it go.
            let cap = (u64::from(rate.burst) * MICRO * share / 1000 / n).max(MICRO);
            bucket.cap_micro = cap;
            // tokens/s × share/1000 / n = micro-tokens per ms × share / n … / 1000.
            bucket.refill_micro_per_ms = (u64::from(rate.per_s) * share / n).max(1);
            bucket.reserve_micro = cap * u64::from(self.shape.reserve_permille) / 1000;
            bucket.level_micro = bucket.level_micro.min(cap);
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed_ms = now.ms_since(self.last);
        if elapsed_ms == 0 {
            return;
        }
        self.last = now;
        for b in &mut self.buckets {
            b.level_micro = b
                .level_micro
                .saturating_add(elapsed_ms.saturating_mul(b.refill_micro_per_ms))
                .min(b.cap_micro);
        }
    }

    /// Take `cost` for `role` now, or say when it can be taken (`Err(ready_at)`, always
    /// later than `now`). Forward calls leave every bucket's reserve; a rollback may
    /// empty it. Nothing is taken unless every bucket can give its part.
    pub fn try_take(&mut self, now: Timestamp, cost: Cost, role: Role) -> Result<(), Timestamp> {
        self.refill(now);
        let mut wait_ms = 0u64;
        for (b, &n) in self.buckets.iter().zip(cost.0.iter()) {
            if n == 0 {
                continue;
            }
            let floor = match role {
                Role::Forward => b.reserve_micro,
                Role::Rollback => 0,
            };
            // A cost above what the bucket can ever hold goes when the bucket is full
            // (the call may then be throttled; refusing it forever would be worse).
            let need = (u64::from(n) * MICRO + floor).min(b.cap_micro);
            if b.level_micro < need {
                let short = need - b.level_micro;
                wait_ms = wait_ms.max(short.div_ceil(b.refill_micro_per_ms));
            }
        }
        if wait_ms > 0 {
            return Err(now.plus_ms(wait_ms));
        }
        for (b, &n) in self.buckets.iter_mut().zip(cost.0.iter()) {
            b.level_micro = b.level_micro.saturating_sub(u64::from(n) * MICRO);
        }
        self.taken[role as usize] += u64::from(cost.total());
        Ok(())
    }

    /// Whole tokens in `bucket` as of the last take.
    pub fn tokens(&self, bucket: ApiBucket) -> u64 {
        self.buckets[bucket as usize].level_micro / MICRO
    }

    /// The tokens a forward caller may not use in `bucket`.
    pub fn reserve_tokens(&self, bucket: ApiBucket) -> u64 {
        self.buckets[bucket as usize].reserve_micro / MICRO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{FailureFilter, Preflight};
    use crate::spec::{ListenerRef, Mode};

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + ms)
    }

    fn rollback_reserve(b: &Budget, bucket: ApiBucket) -> u64 {
        b.reserve_tokens(bucket)
    }

    #[test]
    fn a_full_budget_gives_its_share_of_the_burst_then_says_when_the_next_token_comes() {
        let mut b = Budget::new(Rates::AWS, BudgetShape::DEFAULT, t(0));
        // ELBv2 Describe*: 40 burst × 0.8 = 32, 20 % of it (6.4) kept for rollback.
        let one = Cost::one(ApiBucket::ElbDescribe);
        let mut went = 0;
        while b.try_take(t(0), one, Role::Forward).is_ok() {
            went += 1;
            assert!(went <= 40, "the bucket must run dry");
        }
        assert_eq!(
            went, 25,
            "32 tokens less a 6.4-token reserve: 25 whole calls"
        );
        assert_eq!(
            b.tokens(ApiBucket::ElbDescribe),
            7,
            "32 - 25 whole tokens left"
        );
        assert_eq!(
            b.tokens(ApiBucket::ElbModify),
            16,
            "another bucket untouched (20 burst × 0.8)"
        );
        // Refill 10/s × 0.8 = 8/s: the next whole token above the reserve in 125 ms
        // or less.
        let ready = b.try_take(t(0), one, Role::Forward).unwrap_err();
        assert!(ready > t(0) && ready <= t(125), "{ready:?}");
        assert!(b.try_take(ready, one, Role::Forward).is_ok());
    }

    #[test]
    fn a_rollback_draws_on_the_reserve_forward_progress_left() {
        let mut b = Budget::new(Rates::AWS, BudgetShape::DEFAULT, t(0));
        let write = Cost::one(ApiBucket::ElbModify);
        let mut went = 0;
        while b.try_take(t(0), write, Role::Forward).is_ok() {
            went += 1;
            assert!(went <= 20, "the bucket must run dry");
        }
        assert_eq!(
            went, 12,
            "16 tokens less a 3.2-token reserve: 12 whole calls"
        );
        let reserve = rollback_reserve(&b, ApiBucket::ElbModify);
        assert!(reserve >= 3, "20 × 0.8 × 0.2 = 3.2 tokens kept");
        for _ in 0..reserve {
            assert_eq!(b.try_take(t(0), write, Role::Rollback), Ok(()));
        }
        assert_eq!(b.taken[Role::Rollback as usize], reserve);
    }

    #[test]
    fn nothing_is_taken_when_one_bucket_of_a_cost_is_short() {
        let mut b = Budget::new(Rates::AWS, BudgetShape::DEFAULT, t(0));
        let mut register = Cost::default();
        register.add(ApiBucket::EcsRegister, 10);
        assert_eq!(b.try_take(t(0), register, Role::Forward), Ok(()));
        // 6 of 16 register tokens left: five more plus the 3.2 reserve do not fit.
        let mut cost = Cost::one(ApiBucket::EcsDescribe);
        cost.add(ApiBucket::EcsRegister, 5);
        let before = b.tokens(ApiBucket::EcsDescribe);
        assert!(b.try_take(t(0), cost, Role::Forward).is_err());
        assert_eq!(b.tokens(ApiBucket::EcsDescribe), before);
    }

    #[test]
    fn replicas_split_the_share_and_the_refill() {
        let mut one = Budget::new(Rates::AWS, BudgetShape::DEFAULT, t(0));
        let mut four = Budget::new(Rates::AWS, BudgetShape::DEFAULT, t(0));
        four.set_replicas(t(0), 4);
        assert_eq!(four.replicas(), 4);
        let call = Cost::one(ApiBucket::EcsDescribe);
        let count = |b: &mut Budget, at: Timestamp| {
            let mut n = 0u32;
            while b.try_take(at, call, Role::Rollback).is_ok() {
                n += 1;
                assert!(n <= 1_000);
            }
            n
        };
        assert_eq!(count(&mut one, t(0)), 80);
        assert_eq!(count(&mut four, t(0)), 20);
        // A second later: they refilled at 16/s
        // and 4/s.
        assert_eq!(count(&mut one, t(1_000)), 16);
        assert_eq!(count(&mut four, t(1_000)), 4);
        four.set_replicas(t(1_000), 0);
        assert_eq!(
            four.replicas(),
            1,
            "zero live replicas means this one alone"
        );
    }

    #[test]
    fn a_cost_larger_than_the_bucket_goes_when_the_bucket_is_full() {
        let shape = BudgetShape {
            share_permille: 1000,
            reserve_permille: 0,
        };
        let mut b = Budget::new(Rates::AWS, shape, t(0));
        b.set_replicas(t(0), 50);
        // RegisterTaskDefinition: 20 burst / 50 replicas < 1 token: held at one.
        let register = Cost::one(ApiBucket::EcsRegister);
        assert_eq!(b.try_take(t(0), register, Role::Forward), Ok(()));
        let ready = b.try_take(t(0), register, Role::Forward).unwrap_err();
        // 1 token/s ÷ 50 = one token in 50 s.
        assert_eq!(ready, t(50_000));
        assert_eq!(b.try_take(ready, register, Role::Forward), Ok(()));
    }

    #[test]
    fn every_command_costs_what_its_executor_calls_at_most() {
        let listener = ListenerRef {
            listener_arn: "arn:l".into(),
            rule_arn: None,
        };
        let pre = CommandKind::Preflight(Box::new(Preflight {
            cluster: "prod".into(),
            mode: Mode::ServicePair,
            services: vec!["a".into(), "b".into()],
            target_groups: ["x".into(), "y".into()],
            listener: listener.clone(),
            test_listener: None,
            container: "app".into(),
        }));
        assert_eq!(Cost::of_command(&pre).of(ApiBucket::ElbDescribe), 3);
        let observe = CommandKind::Observe(Observe::Service {
            cluster: "prod".into(),
            service: "a".into(),
            failures: Some(FailureFilter {
                task_definition: "td".into(),
                since: t(0),
                started_by: None,
            }),
            also: None,
        });
        let c = Cost::of_command(&observe);
        assert_eq!(
            (c.of(ApiBucket::EcsDescribe), c.of(ApiBucket::EcsTasks)),
            (1, 2)
        );
        let alarms = CommandKind::Observe(Observe::Alarms {
            names: (0..250).map(|i| format!("a{i}").into()).collect(),
        });
        assert_eq!(Cost::of_command(&alarms).of(ApiBucket::CwDescribeAlarms), 3);
        let weights = CommandKind::SetListenerWeights {
            listener,
            weights: vec![],
        };
        assert_eq!(Cost::of_command(&weights).of(ApiBucket::ElbModify), 1);
    }

    #[test]
    fn a_test_listener_and_its_rule_add_to_a_preflight_and_find_reads_its_lookback() {
        let listener = |rule: Option<&str>| ListenerRef {
            listener_arn: "arn:l".into(),
            rule_arn: rule.map(Into::into),
        };
        let pre = |test: Option<ListenerRef>| {
            Cost::of_command(&CommandKind::Preflight(Box::new(Preflight {
                cluster: "prod".into(),
                mode: Mode::ServicePair,
                services: vec!["a".into(), "b".into()],
                target_groups: ["x".into(), "y".into()],
                listener: listener(None),
                test_listener: test,
                container: "app".into(),
            })))
        };
        // The listener and its rule (2), the test listener (1) and its rule (1), both
        // target groups in one call (1).
        assert_eq!(pre(None).of(ApiBucket::ElbDescribe), 3);
        assert_eq!(pre(Some(listener(None))).of(ApiBucket::ElbDescribe), 4);
        assert_eq!(
            pre(Some(listener(Some("arn:r")))).of(ApiBucket::ElbDescribe),
            5
        );
        assert_eq!(
            pre(None).total(),
            3 + 2 + 2,
            "ELBv2 3, ECS describe 2, task definitions 2"
        );
        let find = Cost::of_command(&CommandKind::FindTaskDefinition {
            base: "arn:td".into(),
            image: "img".into(),
            container: "app".into(),
        });
        assert_eq!(
            find.of(ApiBucket::EcsTaskDefinitions),
            2 + FIND_LOOKBACK_REVISIONS,
            "the base, the family's list and the lookback"
        );
        assert_eq!(find.total(), u32::from(2 + FIND_LOOKBACK_REVISIONS));
    }

    #[test]
    fn buckets_and_roles_have_distinct_names_for_metrics() {
        let names: Vec<&str> = ApiBucket::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names[0], "ecs-describe");
        assert_eq!(
            names[ApiBucket::CwGetMetricData as usize],
            "cw-get-metric-data"
        );
        let distinct: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert!(
            names.iter().all(|n| n.len() > 3 && !n.contains(' ')),
            "{names:?}"
        );
        assert_eq!(
            (Role::Forward.name(), Role::Rollback.name()),
            ("forward", "rollback")
        );
    }

    #[test]
    fn costs_share_a_bucket_only_where_both_take_from_it() {
        let mut preflight = Cost::one(ApiBucket::ElbDescribe);
        preflight.add(ApiBucket::EcsDescribe, 3);
        let health = Cost::one(ApiBucket::ElbDescribe);
        let alarms = Cost::one(ApiBucket::CwDescribeAlarms);
        assert!(preflight.shares_bucket_with(&health));
        assert!(health.shares_bucket_with(&preflight));
        assert!(!preflight.shares_bucket_with(&alarms));
        assert!(!Cost::default().shares_bucket_with(&preflight));
    }

    #[test]
    fn only_the_rollback_phase_draws_on_the_reserve() {
        for phase in PhaseName::ALL {
            let want = if phase == PhaseName::Rollback {
                Role::Rollback
            } else {
                Role::Forward
            };
            assert_eq!(Role::of_phase(phase), want, "{phase:?}");
        }
    }

    #[test]
    fn every_operation_the_adapters_call_has_a_bucket() {
        for op in [
            "DescribeServices",
            "DescribeClusters",
            "UpdateService",
            "CreateTaskSet",
            "DeleteTaskSet",
            "UpdateServicePrimaryTaskSet",
            "ListTasks",
            "DescribeTasks",
            "RegisterTaskDefinition",
            "DescribeTaskDefinition",
            "ListTaskDefinitions",
            "DescribeListeners",
            "DescribeRules",
            "DescribeTargetGroups",
            "DescribeTargetHealth",
            "ModifyListener",
            "ModifyRule",
            "AddTags",
            "DescribeAlarms",
            "GetMetricData",
        ] {
            assert!(ApiBucket::of_operation(op).is_some(), "{op}");
        }
        assert_eq!(ApiBucket::of_operation("PutMetricData"), None);
    }
}
