//! The watch: periodic observation batches and the rollback signals read from them.
//!
//! Phases that wait (deploy, health-check, test traffic, approval, shift holds, bake, the
//! drain wait, pause) embed a [`Monitor`]; it issues one batch per poll interval on a
//! fixed grid (so slow answers do not stretch the schedule) and, once the batch is back,
//! says whether a signal demands a rollback.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::retry::poll_jitter_ms;
use crate::command::{AlarmState, CommandKind, FailureFilter, Observe};
use crate::ids::CommandId;
use crate::io::{Reason, ReasonKind};
use crate::spec::EnvironmentModel;
use crate::time::Timestamp;

/// The largest size green follows blue to (ECS's own limit on a service's tasks).
pub const FOLLOW_DESIRED_MAX: u32 = 5_000;

/// Does green follow blue's scale in this spec? Service pair only (a task set's size is
/// a share of its service's, which ECS applies itself), and only when the spec does not
/// pin green's size.
pub(crate) fn follows_blue(spec: &crate::spec::DeploymentSpec) -> bool {
    matches!(spec.environment, EnvironmentModel::ServicePair { .. }) && spec.desired_count.is_none()
}

/// What a phase watches. A static description per phase, not state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// Green's ECS tasks: the circuit breaker (and steadiness in deploy).
    pub green_service: bool,
    pub green_health: HealthRule,
    pub alarms: bool,
    /// Metric checks: only once green has production traffic.
    pub metrics: bool,
    /// Until the shift completes, green follows blue's scale-out: blue's desired count
    /// is read with each batch and green is scaled up to it (service pair, when the
    /// spec pins no `desired_count`).
    pub follow_blue: bool,
}

/// How green's target health is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthRule {
    Off,
    /// Observed; the phase judges it (health-check counts consecutive healthy samples).
    Observe,
    /// After health-check: no healthy target → rollback at once; fewer than desired for
    /// `degraded_observations_max` samples in a row → rollback.
    Sustain,
}

impl Watch {
    pub const DEPLOY: Watch = Watch {
        green_service: true,
        green_health: HealthRule::Off,
        alarms: false,
        metrics: false,
        follow_blue: true,
    };
    pub const HEALTH_CHECK: Watch = Watch {
        green_service: true,
        green_health: HealthRule::Observe,
        alarms: false,
        metrics: false,
        follow_blue: true,
    };
    /// Green is healthy but has no production traffic (test traffic, approval, guards
    /// before the first shift).
    pub const READY: Watch = Watch {
        green_service: true,
        green_health: HealthRule::Sustain,
        alarms: true,
        metrics: false,
        follow_blue: true,
    };
    /// Green has all production traffic (bake, drain wait): blue, idle, may scale in
    /// and green no longer follows it.
    pub const LIVE: Watch = Watch {
        green_service: true,
        green_health: HealthRule::Sustain,
        alarms: true,
        metrics: true,
        follow_blue: false,
    };
    /// Green has some production traffic (shift holds): still following blue.
    pub const SHIFT: Watch = Watch {
        follow_blue: true,
        ..Watch::LIVE
    };
}

/// The cadence and memory of a watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitor {
    /// Grid origin: tick `n` is due at `epoch + n × interval + jitter(n)`.
    pub epoch: Timestamp,
    pub n: u64,
    pub next_tick_at: Timestamp,
    /// A batch is out; its results are judged at the next decision.
    pub observing: bool,
    /// Consecutive samples with fewer healthy green targets than desired.
    pub degraded_streak: u32,
    /// When this watch last read the slow signals (`pacing.signal_poll` spaces them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals_read_at: Option<Timestamp>,
}

impl Monitor {
    /// A monitor whose first batch is due at once.
    pub fn new(now: Timestamp) -> Self {
        Monitor {
            epoch: now,
            n: 0,
            next_tick_at: now,
            observing: false,
            degraded_streak: 0,
            signals_read_at: None,
        }
    }

    pub fn due(&self, now: Timestamp) -> bool {
        !self.observing && now >= self.next_tick_at
    }

    /// Due, or `deadline` has come with no look out: a wait bounded by a deadline takes
    /// one last look at it rather than wait for a later grid tick (or until "now").
    pub fn due_by(&self, now: Timestamp, deadline: Timestamp) -> bool {
        !self.observing && (now >= self.next_tick_at || now >= deadline)
    }

    /// Push every future time by `ms` (resume after a pause).
    pub fn extend(&mut self, ms: u64) {
        self.epoch = self.epoch.plus_ms(ms);
        self.next_tick_at = self.next_tick_at.plus_ms(ms);
    }

    /// Start a batch the caller issues itself; returns the batch number for command ids.
    pub(crate) fn begin(&mut self, cx: &mut Cx<'_>) -> u64 {
        debug_assert!(!self.observing);
        cx.k.ticks += 1;
        self.observing = true;
        self.schedule_next(cx);
        cx.k.ticks
    }

    /// Issue one observation batch.
    pub(crate) fn tick(&mut self, cx: &mut Cx<'_>, watch: Watch) {
        let tick = self.begin(cx);
        let spec = cx.spec;
        // `pacing.signal_poll`: in a hold (green healthy, judged on sustained health)
        // the slow signals are read only this often — alarms arrive as events within a
        // second, CloudWatch metrics move once a minute, and a failing task fails its
        // health checks first. Health itself is read at every poll.
        let slow_due = match (spec.pacing.signal_poll_ms, self.signals_read_at) {
            (Some(every_ms), Some(last)) => cx.now >= last.plus_ms(every_ms),
            _ => true,
        };
        if slow_due {
            self.signals_read_at = Some(cx.now);
        }
        let holding = watch.green_health == HealthRule::Sustain;
        let read_blue = watch.follow_blue && follows_blue(cx.spec) && (slow_due || !holding);
        let blue_service = read_blue.then(|| cx.sides.blue_service(spec).clone());
        let green_read = watch.green_service && (slow_due || !holding);
        if green_read {
            let service = cx.sides.green_service(spec);
            let failures = cx.k.green_task_definition.clone().map(|td| FailureFilter {
                task_definition: td,
                since: cx.k.green_since.unwrap_or(cx.now),
                started_by: match &spec.environment {
                    EnvironmentModel::TaskSet { .. } => cx.k.green_task_set.clone(),
                    EnvironmentModel::ServicePair { .. } => None,
                },
            });
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-service"),
                CommandKind::Observe(Observe::Service {
                    cluster: spec.cluster.clone(),
                    service: service.clone(),
                    failures,
                    // Blue rides in green's `DescribeServices` call: one call, not two.
                    also: blue_service.clone(),
                }),
            );
        }
        if read_blue {
            self.follow_blue(cx, tick);
        }
        if let Some(blue_service) = blue_service.filter(|_| !green_read) {
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-blue"),
                CommandKind::Observe(Observe::Service {
                    cluster: spec.cluster.clone(),
                    service: blue_service,
                    failures: None,
                    also: None,
                }),
            );
        }
        if watch.green_health != HealthRule::Off {
            let tg = cx.green_tg().clone();
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-health"),
                CommandKind::Observe(Observe::TargetHealth { target_group: tg }),
            );
        }
        if watch.alarms && !spec.alarms.is_empty() && slow_due {
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-alarms"),
                CommandKind::Observe(Observe::Alarms {
                    names: spec.alarms.clone(),
                }),
            );
        }
        if watch.metrics && !spec.metrics.is_empty() && slow_due {
            let request = super::metrics::request(spec, cx.blue_tg(), cx.green_tg(), cx.now);
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-metrics"),
                CommandKind::Observe(Observe::Metrics(request)),
            );
        }
    }

    /// Scale green up to blue's desired count if blue grew (an autoscaler's scale-out
    /// during the deployment) — never down: blue scales in as its traffic moves to
    /// green, and green must end at least as large as blue was. (Blue is read again in
    /// the same batch: in green's read, or alone when green is not read.)
    fn follow_blue(&mut self, cx: &mut Cx<'_>, tick: u64) {
        let spec = cx.spec;
        let blue_service = cx.sides.blue_service(spec).clone();
        let blue_desired =
            cx.k.services
                .get(&blue_service)
                .filter(|s| s.value.status == "ACTIVE")
                .map(|s| s.value.desired_count);
        if let Some(n) = blue_desired
            && n > cx.green_desired()
            && n <= FOLLOW_DESIRED_MAX
        {
            cx.k.green_desired = Some(n);
            let green_service = cx.sides.green_service(spec).clone();
            cx.issue_as(
                CommandId::numbered(cx.id, "t", tick, "-follow"),
                CommandKind::ScaleEnvironment {
                    cluster: spec.cluster.clone(),
                    service: green_service,
                    desired_count: n,
                },
            );
        }
    }

    fn schedule_next(&mut self, cx: &Cx<'_>) {
        let interval = cx.spec.pacing.poll_interval_ms;
        let seed = cx.seed();
        self.n += 1;
        let grid = |n: u64| {
            self.epoch
                .plus_ms(n.saturating_mul(interval))
                .plus_ms(poll_jitter_ms(interval, seed, n))
        };
        let mut at = grid(self.n);
        if at <= cx.now {
            // Fell behind (slow answers, a long pause): skip the missed grid points.
            self.n = cx.now.ms_since(self.epoch) / interval + 1;
            at = grid(self.n);
        }
        self.next_tick_at = at;
    }

    /// Called at the start of a decision: if a batch was out, it is back now — judge
    /// it. `None`: no batch was out. `Some(Err(reason))`: roll back.
    pub(crate) fn collect(&mut self, cx: &Cx<'_>, watch: Watch) -> Option<Result<(), Reason>> {
        if !self.observing {
            return None;
        }
        self.observing = false;
        Some(self.judge(cx, watch))
    }

    fn judge(&mut self, cx: &Cx<'_>, watch: Watch) -> Result<(), Reason> {
        let spec = cx.spec;
        let k = &*cx.k;
        if watch.green_service {
            let failed = match &spec.environment {
                EnvironmentModel::ServicePair { .. } => k
                    .services
                    .get(cx.sides.green_service(spec))
                    .map(|s| s.value.failed_tasks),
                EnvironmentModel::TaskSet { service } => {
                    k.services.get(service).map(|s| s.value.failed_tasks)
                }
            };
            let max = spec.circuit_breaker.failed_tasks_max;
            if let Some(failed) = failed
                && failed >= max
            {
                return Err(Reason::new(
                    ReasonKind::CircuitBreaker,
                    format!("{failed} green tasks stopped by failure (limit {max})"),
                ));
            }
        }
        if watch.alarms
            && let Some(alarms) = &k.alarms
        {
            if let Some(a) = alarms
                .value
                .alarms
                .iter()
                .find(|a| a.state == AlarmState::Alarm)
            {
                return Err(Reason::new(
                    ReasonKind::Alarm,
                    format!("alarm {} is in ALARM: {}", a.name, a.reason),
                ));
            }
            if let Some(name) = alarms.value.missing.first() {
                return Err(Reason::new(
                    ReasonKind::Alarm,
                    format!("alarm {name} no longer exists: the deployment cannot be watched"),
                ));
            }
        }
        if watch.metrics
            && let Some(data) = &k.metrics
            && let Some(reason) = super::metrics::evaluate(spec, &data.value)
        {
            return Err(reason);
        }
        if watch.green_health == HealthRule::Sustain
            && let Some(h) = k.green_health(spec, cx.sides)
        {
            let desired = cx.green_desired();
            if h.value.healthy == 0 {
                return Err(Reason::new(
                    ReasonKind::Unhealthy,
                    format!(
                        "green has no healthy targets ({} unhealthy, {} initial, {} draining)",
                        h.value.unhealthy, h.value.initial, h.value.draining
                    ),
                ));
            }
            if h.value.healthy < desired {
                self.degraded_streak += 1;
                let max = spec.health.degraded_observations_max;
                if self.degraded_streak >= max {
                    return Err(Reason::new(
                        ReasonKind::Unhealthy,
                        format!(
                            "green had {} of {desired} targets healthy for {} observations in a row",
                            h.value.healthy, self.degraded_streak
                        ),
                    ));
                }
            } else {
                self.degraded_streak = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Which reads one tick issues, per watch and pacing: the cadence that keeps the API
    //! bill down must never drop a read a rollback signal needs.
    use super::*;
    use crate::command::{ServiceStatus, Weights};
    use crate::ids::DeploymentId;
    use crate::io::Output;
    use crate::machine::exec::Exec;
    use crate::machine::knowledge::{Knowledge, Sample, Sides};
    use crate::plan::example_draft;
    use crate::spec::{DeploymentSpec, MetricCheck, MetricKind, SpecDraft};

    const T0: u64 = 1_800_000_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    fn spec(f: impl FnOnce(&mut SpecDraft)) -> DeploymentSpec {
        let mut d = example_draft();
        d.metrics = vec![MetricCheck {
            name: "errors".into(),
            metric: MetricKind::ErrorRate5xx,
            max: Some(5.0),
            max_ratio_to_blue: None,
            floor: 1.0,
            window_ms: 300_000,
        }];
        d.pacing.poll_interval_ms = 10_000;
        f(&mut d);
        DeploymentSpec::new(d).unwrap()
    }

    fn sides() -> Sides {
        Sides {
            blue: 0,
            desired_count: 2,
            blue_task_definition: "td:1".into(),
            blue_task_set: None,
            test_listener_original: None,
        }
    }

    /// A tick at `now_ms`; the command ids it issued, and the follow write's size.
    fn tick(
        spec: &DeploymentSpec,
        k: &mut Knowledge,
        m: &mut Monitor,
        watch: Watch,
        now_ms: u64,
    ) -> (Vec<String>, Option<u32>) {
        let id = DeploymentId::new("web-1").unwrap();
        let sides = sides();
        let mut exec = Exec::default();
        let mut cx = Cx {
            id: &id,
            spec,
            now: at(now_ms),
            k,
            exec: &mut exec,
            sides: &sides,
        };
        m.tick(&mut cx, watch);
        m.observing = false;
        let mut follow = None;
        let ids = exec
            .outbox
            .iter()
            .filter_map(|o| match o {
                Output::Command(c) => {
                    match &c.kind {
                        CommandKind::ScaleEnvironment { desired_count, .. } => {
                            follow = Some(*desired_count);
                        }
                        // A read carrying a second service shows it: `…-service+web-a`.
                        CommandKind::Observe(Observe::Service {
                            also: Some(also), ..
                        }) => return Some(format!("{}+{also}", c.id)),
                        _ => {}
                    }
                    Some(c.id.to_string())
                }
                _ => None,
            })
            .collect();
        (ids, follow)
    }

    fn blue_seen(k: &mut Knowledge, status: &str, desired: u32) {
        k.services.insert(
            "web-a".into(),
            Sample {
                at: at(0),
                value: ServiceStatus {
                    service: "web-a".into(),
                    status: status.into(),
                    desired_count: desired,
                    running_count: desired,
                    pending_count: 0,
                    task_definition: "td:1".into(),
                    target_groups: [].into(),
                    task_sets: vec![],
                    failed_tasks: 0,
                    also: None,
                },
            },
        );
    }

    #[test]
    fn each_watch_reads_what_it_judges_numbered_by_tick() {
        let s = spec(|_| {});
        let mut k = Knowledge {
            prod_weights: Weights::ALL_GREEN,
            ..Knowledge::default()
        };
        let mut m = Monitor::new(at(0));
        let (ids, _) = tick(&s, &mut k, &mut m, Watch::DEPLOY, 0);
        // Blue (which green follows) rides in green's read: one DescribeServices.
        assert_eq!(ids, ["web-1/t1-service+web-a"]);
        let (ids, _) = tick(&s, &mut k, &mut m, Watch::HEALTH_CHECK, 10_000);
        assert_eq!(ids, ["web-1/t2-service+web-a", "web-1/t2-health"]);
        let (ids, _) = tick(&s, &mut k, &mut m, Watch::READY, 20_000);
        assert_eq!(
            ids,
            [
                "web-1/t3-service+web-a",
                "web-1/t3-health",
                "web-1/t3-alarms"
            ]
        );
        let (ids, _) = tick(&s, &mut k, &mut m, Watch::LIVE, 30_000);
        assert_eq!(
            ids,
            [
                "web-1/t4-service",
                "web-1/t4-health",
                "web-1/t4-alarms",
                "web-1/t4-metrics"
            ]
        );
        // Without alarms or metrics configured, nothing is asked of CloudWatch.
        let bare = spec(|d| {
            d.alarms = Default::default();
            d.metrics.clear();
        });
        let (ids, _) = tick(&bare, &mut k, &mut m, Watch::LIVE, 40_000);
        assert_eq!(ids, ["web-1/t5-service", "web-1/t5-health"]);
    }

    #[test]
    fn green_follows_blue_only_in_a_service_pair_with_no_pinned_size() {
        let mut k = Knowledge::default();
        for (s, follows) in [
            (spec(|_| {}), true),
            (spec(|d| d.desired_count = Some(2)), false),
            (
                spec(|d| {
                    d.environment = EnvironmentModel::TaskSet {
                        service: "web".into(),
                    }
                }),
                false,
            ),
        ] {
            assert_eq!(follows_blue(&s), follows);
            let mut m = Monitor::new(at(0));
            let (ids, _) = tick(&s, &mut k, &mut m, Watch::DEPLOY, 0);
            assert_eq!(
                ids.iter().any(|i| i.ends_with("+web-a")),
                follows,
                "{ids:?}"
            );
        }
    }

    #[test]
    fn blue_is_read_alone_only_when_a_watch_follows_blue_without_reading_green() {
        // No phase's watch does (following blue implies reading green), but the read
        // must not vanish if one ever did.
        let s = spec(|_| {});
        let mut k = Knowledge::default();
        let mut m = Monitor::new(at(0));
        let watch = Watch {
            green_service: false,
            ..Watch::DEPLOY
        };
        let (ids, _) = tick(&s, &mut k, &mut m, watch, 0);
        assert_eq!(ids, ["web-1/t1-blue"]);
    }

    #[test]
    fn green_scales_up_to_a_larger_active_blue_and_never_past_the_ecs_limit() {
        let s = spec(|_| {});
        let follow = |status: &str, blue: u32| {
            let mut k = Knowledge::default();
            blue_seen(&mut k, status, blue);
            let mut m = Monitor::new(at(0));
            let (_, n) = tick(&s, &mut k, &mut m, Watch::SHIFT, 0);
            (n, k.green_desired)
        };
        assert_eq!(follow("ACTIVE", 5), (Some(5), Some(5)), "blue grew to 5");
        assert_eq!(follow("ACTIVE", 2), (None, None), "blue is green's size");
        assert_eq!(follow("ACTIVE", 1), (None, None), "never down");
        assert_eq!(
            follow("DRAINING", 5),
            (None, None),
            "a draining blue is no guide"
        );
        assert_eq!(
            follow("ACTIVE", FOLLOW_DESIRED_MAX),
            (Some(FOLLOW_DESIRED_MAX), Some(FOLLOW_DESIRED_MAX))
        );
        assert_eq!(follow("ACTIVE", FOLLOW_DESIRED_MAX + 1), (None, None));
    }

    #[test]
    fn in_a_hold_the_slow_signals_are_read_at_their_own_cadence_and_health_every_tick() {
        let s = spec(|d| d.pacing.signal_poll_ms = Some(60_000));
        let mut k = Knowledge::default();
        let mut m = Monitor::new(at(0));
        let all = |n: u32| {
            ["service", "health", "alarms", "metrics"]
                .map(|w| format!("web-1/t{n}-{w}"))
                .to_vec()
        };
        assert_eq!(tick(&s, &mut k, &mut m, Watch::LIVE, 0).0, all(1));
        assert_eq!(
            tick(&s, &mut k, &mut m, Watch::LIVE, 59_999).0,
            ["web-1/t2-health"],
            "a millisecond short of the cadence: health only"
        );
        assert_eq!(tick(&s, &mut k, &mut m, Watch::LIVE, 60_000).0, all(3));
        // Before the hold (health-check judges the service's tasks itself) the service is
        // read at every tick whatever the cadence.
        let mut m = Monitor::new(at(0));
        tick(&s, &mut k, &mut m, Watch::HEALTH_CHECK, 0);
        let (ids, _) = tick(&s, &mut k, &mut m, Watch::HEALTH_CHECK, 10_000);
        assert!(
            ids.contains(&"web-1/t5-service+web-a".to_string()),
            "{ids:?}"
        );
    }

    #[test]
    fn a_resume_moves_the_grid_by_the_pause() {
        let mut m = Monitor::new(at(0));
        m.next_tick_at = at(10_000);
        m.extend(5_000);
        assert_eq!((m.epoch, m.next_tick_at), (at(5_000), at(15_000)));
    }

    #[test]
    fn ticks_keep_to_their_grid_and_skip_the_points_a_slow_answer_missed() {
        let s = spec(|_| {});
        let mut k = Knowledge::default();
        let mut m = Monitor::new(at(0));
        // Interval 10 s, jitter under a tenth of it.
        let in_slot = |t: Timestamp, slot_ms: u64| t >= at(slot_ms) && t < at(slot_ms + 1_000);
        tick(&s, &mut k, &mut m, Watch::LIVE, 0);
        assert!(in_slot(m.next_tick_at, 10_000), "{:?}", m.next_tick_at);
        tick(&s, &mut k, &mut m, Watch::LIVE, 10_500);
        assert!(in_slot(m.next_tick_at, 20_000), "{:?}", m.next_tick_at);
        // The batch came back 15 s late: the 30 s point is gone, the next is 40 s.
        tick(&s, &mut k, &mut m, Watch::LIVE, 35_000);
        assert!(in_slot(m.next_tick_at, 40_000), "{:?}", m.next_tick_at);
        assert!(m.next_tick_at > at(35_000));
    }
}
