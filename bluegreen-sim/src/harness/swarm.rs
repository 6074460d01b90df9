//! Scenarios: which apps a seed deploys, what they push and when, and — the swarm draw
//! (TigerBeetle's VOPR) — which faults exist and how often they fire. Each profile draws
//! from different ranges; every draw descends from the seed.

use bluegreen_core::{
    Artifact, CircuitBreaker, EnvironmentModel, HealthSpec, HookSpec, HookStage, ListenerRef,
    MetricCheck, MetricKind, Name, Pacing, SpecDraft, Strategy, Timeouts, Timestamp,
};

use crate::faults::{Applies, Effect, Rule, Rules};
use crate::rng::Rng;
use crate::world::{HookBehaviour, SpanMs, WorldFaults, WorldProfile};

/// Virtual time every run starts at (2027-01-15T08:00:00Z).
pub const START_MS: u64 = 1_800_000_000_000;

/// A named bundle of world timings and fault intensity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// AWS timings, no faults: the baseline (calls per deployment vs the plan).
    Calm,
    /// `WorldProfile::fast()` timings, swarm faults.
    Fast,
    /// `WorldProfile::aws()` timings (DESIGN §4a), swarm faults.
    Aws,
    /// AWS timings, many apps at once, a noisy neighbour and heavy faults: throttling
    /// emerges from the token buckets.
    Storm,
}

impl Profile {
    pub const ALL: [Profile; 4] = [Profile::Calm, Profile::Fast, Profile::Aws, Profile::Storm];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Calm => "calm",
            Profile::Fast => "fast",
            Profile::Aws => "aws",
            Profile::Storm => "storm",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The profile a sweep over all profiles gives seed `seed`.
    pub fn for_seed(seed: u64) -> Profile {
        Profile::ALL[(seed % 4) as usize]
    }
}

/// One image push for an app.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    /// Offset from the run's start.
    pub at_ms: u64,
    pub image: String,
    /// Deploy a pre-registered revision of this image rather than the image itself.
    pub as_task_definition: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppPlan {
    pub draft: SpecDraft,
    pub pushes: Vec<Push>,
    pub hooks: Vec<(Name, HookBehaviour)>,
}

/// Controller crashes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrashPlan {
    /// Mean time between crashes of one deployment's controller (0: never).
    pub mean_ms: u64,
    pub restart_ms: SpanMs,
    /// Probability of crashing after persisting a turn but before sending its commands.
    pub before_send: f64,
    /// Probability of crashing after a response arrived but before it was persisted.
    pub on_response: f64,
}

impl CrashPlan {
    pub const NONE: CrashPlan = CrashPlan {
        mean_ms: 0,
        restart_ms: SpanMs::new(1_000, 10_000),
        before_send: 0.0,
        on_response: 0.0,
    };

    pub fn enabled(&self) -> bool {
        self.mean_ms > 0 || self.before_send > 0.0 || self.on_response > 0.0
    }
}

/// Operators poking at deployments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OperatorPlan {
    /// Mean time between random requests to one deployment (0: none).
    pub mean_ms: u64,
    /// Relative weights of promote / pause / resume / abort.
    pub weights: [u32; 4],
    /// After an accepted pause, probability that someone resumes, and when.
    pub resume: f64,
    pub resume_after_ms: SpanMs,
    /// Probability that someone promotes an approval gate (else it times out).
    pub approver: f64,
}

impl OperatorPlan {
    pub const NONE: OperatorPlan = OperatorPlan {
        mean_ms: 0,
        weights: [0; 4],
        resume: 1.0,
        resume_after_ms: SpanMs::new(10_000, 120_000),
        approver: 1.0,
    };
}

/// Everything one run does, drawn from (seed, profile) — or built by hand in tests.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub profile: Profile,
    pub world: WorldProfile,
    pub world_faults: WorldFaults,
    pub rules: Rules,
    pub crash: CrashPlan,
    pub operator: OperatorPlan,
    pub apps: Vec<AppPlan>,
    /// Faults run during `[start, start + safety_ms)`; then the liveness phase.
    pub safety_ms: u64,
    /// One network leg (request or response), normally.
    pub latency_ms: SpanMs,
    pub start: Timestamp,
    /// CloudWatch alarm state changes delivered through EventBridge to the service's
    /// webhook (`Input::Alarm`), with their delay, loss and duplication.
    pub alarm_events: AlarmEvents,
    /// The service's own API budget (DESIGN §5): `None` sends every command at once
    /// and lets AWS's buckets throttle what they must.
    pub budget: Option<bluegreen_core::budget::BudgetShape>,
}

/// How alarm events reach deployments. Off: polling alone reads alarms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmEvents {
    pub enabled: bool,
    /// EventBridge → API destination → the webhook's answer, per delivery.
    pub delay_ms: SpanMs,
    /// Chance an event never arrives (polling is the fallback).
    pub loss: f64,
    /// Chance an event arrives a second time, later (at-least-once delivery).
    pub duplicate: f64,
    /// Chance a delivery is retried late, minutes after the change.
    pub late: f64,
    pub late_ms: SpanMs,
}

impl AlarmEvents {
    pub const OFF: AlarmEvents = AlarmEvents {
        enabled: false,
        delay_ms: SpanMs::fixed(0),
        loss: 0.0,
        duplicate: 0.0,
        late: 0.0,
        late_ms: SpanMs::fixed(0),
    };

    /// Delivered within a second or two, never lost (the measurements' event-driven
    /// side).
    pub const PROMPT: AlarmEvents = AlarmEvents {
        enabled: true,
        delay_ms: SpanMs::new(100, 1_500),
        loss: 0.0,
        duplicate: 0.0,
        late: 0.0,
        late_ms: SpanMs::fixed(0),
    };

    /// Evaluated and announced, and every announcement lost: polling alone acts, while
    /// the measurements still see when the alarm changed (the poll-only side).
    pub const LOST: AlarmEvents = AlarmEvents {
        loss: 1.0,
        ..AlarmEvents::PROMPT
    };

    /// A draw for a swarm seed, from a stream of its own (so every other draw of the
    /// seed keeps its meaning): on for most seeds, with EventBridge's delays, losses,
    /// duplicates and late retries.
    fn draw(seed: u64, profile: Profile) -> AlarmEvents {
        let mut r = Rng::derive(seed, 0xa1a7_e7e5);
        if profile == Profile::Calm {
            return AlarmEvents::PROMPT;
        }
        if r.chance(0.2) {
            return AlarmEvents::OFF;
        }
        AlarmEvents {
            enabled: true,
            delay_ms: SpanMs::new(50, r.range(500, 5_000)),
            loss: r.range(0, 30) as f64 / 100.0,
            duplicate: r.range(0, 30) as f64 / 100.0,
            late: r.range(0, 10) as f64 / 100.0,
            late_ms: SpanMs::new(60_000, 600_000),
        }
    }
}

/// The service's API budget for a swarm seed, from a stream of its own: on for most
/// seeds on AWS timings (where the buckets bite), with shares from a tenth of the
/// account to all of it and reserves up to a half; off for the fast world (whose tests
/// of other behaviour assume no client-side pacing) and for a fifth of the rest, so
/// both ways stay swept.
fn draw_budget(seed: u64, profile: Profile) -> Option<bluegreen_core::budget::BudgetShape> {
    let mut r = Rng::derive(seed, 0xb0d9_e7ed);
    if profile == Profile::Fast || r.chance(0.2) {
        return None;
    }
    Some(bluegreen_core::budget::BudgetShape {
        share_permille: r.range(100, 1000) as u32,
        reserve_permille: r.range(0, 500) as u32,
    })
}

impl AppPlan {
    /// An app deploying these images, pushed at these offsets (ms from the start).
    pub fn new(draft: SpecDraft, pushes: &[(u64, &str)]) -> AppPlan {
        AppPlan {
            draft,
            pushes: pushes
                .iter()
                .map(|(at_ms, image)| Push {
                    at_ms: *at_ms,
                    image: image.to_string(),
                    as_task_definition: false,
                })
                .collect(),
            hooks: Vec::new(),
        }
    }
}

/// A plain draft for app `name` (service pair `<name>-a`/`<name>-b`, canary 10 % for a
/// minute, bake a minute, drain 30 s, alarm `<name>-5xx`), resources named so that
/// several apps can share a world. Tests change what they need.
pub fn app_draft(name: &str) -> SpecDraft {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    let id = |salt: u64| {
        format!(
            "{:016x}",
            bluegreen_core::ids::stable_hash64_with(name.as_bytes(), salt)
        )
    };
    let lb = format!("app/{name}/{}", id(1));
    // The example's other fields (timeouts, pacing, strategy…), made once per thread:
    // every field it formats is replaced below, and a clone shares its names.
    thread_local! {
        static EXAMPLE: SpecDraft = bluegreen_core::plan::example_draft();
    }
    let mut d = EXAMPLE.with(SpecDraft::clone);
    d.app = Name::from(name);
    d.cluster = "prod".into();
    d.environment = EnvironmentModel::ServicePair {
        services: [format!("{name}-a").into(), format!("{name}-b").into()],
    };
    d.target_groups = [
        format!("{arn}:targetgroup/{name}-a/{}", id(2)).into(),
        format!("{arn}:targetgroup/{name}-b/{}", id(3)).into(),
    ];
    d.listener = ListenerRef {
        listener_arn: format!("{arn}:listener/{lb}/{}", id(4)).into(),
        rule_arn: None,
    };
    d.alarms = vec![format!("{name}-5xx").into()].into();
    d.container = "app".into();
    d.artifact = Artifact::Image(format!("registry.example/{name}:initial").into());
    d
}

impl Scenario {
    /// A scenario with no apps and no faults (tests add what they need).
    pub fn quiet(seed: u64, world: WorldProfile) -> Scenario {
        Scenario {
            seed,
            profile: Profile::Calm,
            world,
            world_faults: WorldFaults::default(),
            rules: Rules::none(seed),
            crash: CrashPlan::NONE,
            operator: OperatorPlan::NONE,
            apps: Vec::new(),
            safety_ms: 0,
            latency_ms: SpanMs::new(5, 50),
            start: Timestamp::from_millis(START_MS),
            alarm_events: AlarmEvents::OFF,
            budget: None,
        }
    }

    /// The swarm draw for `seed` under `profile`.
    pub fn draw(seed: u64, profile: Profile) -> Scenario {
        let mut r = Rng::derive(seed, 0x5ce7_a410);
        let fast = profile == Profile::Fast;
        let world = if fast {
            WorldProfile::fast()
        } else {
            WorldProfile::aws()
        };
        let mut s = Scenario::quiet(seed, world);
        s.profile = profile;
        s.alarm_events = AlarmEvents::draw(seed, profile);
        s.budget = draw_budget(seed, profile);
        if s.alarm_events.enabled {
            // Apps that count on alarm events read the slow signals only now and then in
            // holds (a stream of its own: every other draw keeps its meaning).
            let mut r = Rng::derive(seed, 0xa1a7_f011);
            for app in &mut s.apps {
                if r.chance(0.5) {
                    let poll = app.draft.pacing.poll_interval_ms;
                    app.draft.pacing.signal_poll_ms = Some(poll * r.range(2, 12));
                }
            }
        }
        let apps = match profile {
            Profile::Calm => r.range(1, 3),
            Profile::Fast | Profile::Aws => r.range(1, 4),
            Profile::Storm => r.range(8, 24),
        };
        let minute = if fast { 6_000 } else { 60_000 };
        for i in 0..apps {
            s.apps.push(draw_app(&mut r, i as usize, profile, minute));
        }
        s.safety_ms = r.range(5, 60) * minute;
        if profile != Profile::Calm {
            s.rules = draw_rules(&mut r, seed, profile, fast);
            s.world_faults = draw_world_faults(&mut r, profile, minute);
            if r.chance(0.4) || profile == Profile::Storm {
                s.crash = CrashPlan {
                    mean_ms: r.range(2, 20) * minute,
                    restart_ms: if fast {
                        SpanMs::new(200, 3_000)
                    } else {
                        SpanMs::new(1_000, 30_000)
                    },
                    before_send: if r.chance(0.5) {
                        r.range(1, 20) as f64 / 1000.0
                    } else {
                        0.0
                    },
                    on_response: if r.chance(0.5) {
                        r.range(1, 20) as f64 / 1000.0
                    } else {
                        0.0
                    },
                };
            }
            if r.chance(0.4) {
                let abort = if r.chance(0.3) { 10 } else { 0 };
                s.operator = OperatorPlan {
                    mean_ms: r.range(3, 30) * minute,
                    weights: [40, 30, 20, abort],
                    resume: 0.9,
                    resume_after_ms: SpanMs::new(minute / 6, 10 * minute),
                    approver: 0.8,
                };
            }
        }
        s
    }
}

fn hex(r: &mut Rng, digits: usize) -> String {
    let v = r.next_u64();
    format!("{v:016x}")[..digits.min(16)].to_string()
}

fn draw_app(r: &mut Rng, i: usize, profile: Profile, minute: u64) -> AppPlan {
    let fast = profile == Profile::Fast;
    let name = format!("app{i}");
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    let lb = format!("app/{name}/{}", hex(r, 16));
    let listener = |r: &mut Rng, rule: bool| {
        let l = format!("{arn}:listener/{lb}/{}", hex(r, 16));
        let rule_arn = rule.then(|| {
            format!(
                "{arn}:listener-rule/{lb}/{}/{}",
                &l[l.len() - 16..],
                hex(r, 16)
            )
        });
        ListenerRef {
            listener_arn: l.into(),
            rule_arn: rule_arn.map(Name::from),
        }
    };
    let task_set = r.chance(0.3);
    let environment = if task_set {
        EnvironmentModel::TaskSet {
            service: name.clone().into(),
        }
    } else {
        EnvironmentModel::ServicePair {
            services: [format!("{name}-a").into(), format!("{name}-b").into()],
        }
    };
    let strategy = match r.below(100) {
        0..25 => Strategy::AllAtOnce,
        25..70 => Strategy::Canary {
            percent: r.range(5, 50) as u8,
            wait_ms: r.range(1, 10) * minute / 2,
        },
        _ => Strategy::Linear {
            step_percent: r.range(10, 50) as u8,
            interval_ms: r.range(1, 6) * minute / 2,
        },
    };
    let test_listener = if r.chance(0.25) {
        let rule = r.chance(0.3);
        Some(listener(r, rule))
    } else {
        None
    };
    let test_traffic_ms = if test_listener.is_some() {
        r.range(0, 2) * minute
    } else {
        0
    };
    let alarms = (0..r.range(0, 2))
        .map(|k| Name::from(format!("{name}-alarm-{k}")))
        .collect();
    let metrics = if r.chance(0.25) {
        vec![
            MetricCheck {
                name: "5xx-rate".into(),
                metric: MetricKind::ErrorRate5xx,
                max: Some(5.0),
                max_ratio_to_blue: r.chance(0.5).then_some(3.0),
                floor: 1.0,
                window_ms: 300_000,
            },
            MetricCheck {
                name: "p99".into(),
                metric: MetricKind::LatencyP99,
                max: Some(1_000.0),
                max_ratio_to_blue: None,
                floor: 0.0,
                window_ms: 300_000,
            },
        ]
    } else {
        vec![]
    };
    let command_ms = r.range(10, 60) * 1_000;
    let mut hooks = Vec::new();
    let mut behaviours = Vec::new();
    if r.chance(0.3) {
        let stages = [
            HookStage::GreenReady,
            HookStage::BeforeShift,
            HookStage::AfterShift,
            HookStage::Rollback,
            HookStage::TestTraffic,
        ];
        for k in 0..r.range(1, 3) {
            let stage = *r.pick(&stages);
            if stage == HookStage::TestTraffic && test_listener.is_none() {
                continue;
            }
            let timeout_ms = r.range(1, 10) * 1_000;
            let hook = HookSpec {
                name: format!("h{k}").into(),
                stage,
                url: format!("https://hooks.example/{name}/h{k}").into(),
                timeout_ms,
                deadline_ms: timeout_ms + r.range(1, 5) * minute,
                interval_ms: r.range(5, 20) * 1_000 / if fast { 5 } else { 1 },
            };
            let behaviour = match r.below(100) {
                0..50 => HookBehaviour::Pass,
                50..60 => HookBehaviour::Fail,
                60..75 => HookBehaviour::NotYet(r.range(1, 5) as u32),
                75..85 => HookBehaviour::Slow {
                    delay_ms: r.range(100, timeout_ms.min(command_ms) - 50),
                },
                85..95 => HookBehaviour::Unreachable(r.range(1, 3) as u32),
                _ => HookBehaviour::Hang(r.range(1, 2) as u32),
            };
            behaviours.push((hook.name.clone(), behaviour));
            hooks.push(hook);
        }
    }
    let pacing = Pacing {
        poll_interval_ms: if fast {
            r.range(1, 5) * 1_000
        } else {
            r.range(5, 30) * 1_000
        },
        attempts_max: r.range(4, 10) as u32,
        retry_min_ms: r.range(500, 2_000),
        retry_max_ms: r.range(10, 60) * 1_000,
        signal_poll_ms: None,
    };
    let timeouts = Timeouts {
        deploy_ms: if fast { 300_000 } else { 900_000 },
        health_ms: if fast { 300_000 } else { 600_000 },
        approval_ms: r.range(10, 60) * minute,
        command_ms,
        scale_down_ms: 4_200_000,
    };
    let prod_rule = r.chance(0.3);
    let prod_listener = listener(r, prod_rule);
    let draft = SpecDraft {
        app: name.clone().into(),
        cluster: format!("cluster{}", i % 2).into(),
        environment,
        target_groups: [
            format!("{arn}:targetgroup/{name}-a/{}", hex(r, 16)).into(),
            format!("{arn}:targetgroup/{name}-b/{}", hex(r, 16)).into(),
        ],
        listener: prod_listener,
        test_listener,
        test_traffic_ms,
        container: "app".into(),
        artifact: Artifact::Image(format!("registry.example/{name}:initial").into()),
        desired_count: (!task_set && r.chance(0.3)).then(|| r.range(1, 6) as u32),
        strategy,
        bake_ms: r.range(0, 10) * minute / 2,
        drain_ms: r.range(0, 5) * minute / 2,
        approval_timeout_ms: r.chance(0.15).then(|| r.range(5, 30) * minute),
        health: HealthSpec {
            healthy_observations_min: r.range(1, 5) as u32,
            degraded_observations_max: r.range(1, 5) as u32,
        },
        circuit_breaker: CircuitBreaker {
            failed_tasks_max: r.range(1, 5) as u32,
        },
        alarms,
        metrics,
        hooks,
        timeouts,
        pacing,
    };
    let mut pushes: Vec<Push> = Vec::new();
    let mut at_ms = r.range(0, 2 * minute);
    for n in 0..r.range(1, 3) {
        let quality = match r.below(100) {
            0..70 => "",
            70..78 => "-crashloop",
            78..86 => "-unhealthy",
            86..94 => "-5xx",
            _ => "-slow",
        };
        let repeat = n > 0 && r.chance(0.1);
        let image = if repeat {
            pushes[r.below(pushes.len() as u64) as usize].image.clone()
        } else {
            format!("registry.example/{name}:v{}{quality}", n + 2)
        };
        pushes.push(Push {
            at_ms,
            image,
            as_task_definition: r.chance(0.05),
        });
        // Sometimes the next push comes while this one still runs (it queues, and a
        // third may supersede it).
        at_ms += if r.chance(0.3) {
            r.range(0, 3) * minute
        } else {
            r.range(5, 40) * minute
        };
    }
    AppPlan {
        draft,
        pushes,
        hooks: behaviours,
    }
}

fn draw_rules(r: &mut Rng, seed: u64, profile: Profile, fast: bool) -> Rules {
    let storm = profile == Profile::Storm;
    let p = |r: &mut Rng, lo: u64, hi: u64| r.range(lo, hi) as f64 / 1000.0;
    let mut rules = Vec::new();
    let mut maybe = |r: &mut Rng, on: f64, rule: Rule| {
        if r.chance(on) {
            rules.push(rule);
        }
    };
    let latency = if fast {
        SpanMs::new(100, 2_000)
    } else {
        SpanMs::new(200, 8_000)
    };
    let throttle = Rule {
        name: "throttle",
        applies: Applies::Aws,
        probability: p(r, 5, 80),
        effect: Effect::Throttle,
    };
    maybe(r, if storm { 0.9 } else { 0.5 }, throttle);
    let e5xx = Rule {
        name: "5xx",
        applies: Applies::Aws,
        probability: p(r, 5, 50),
        effect: Effect::ServerError,
    };
    maybe(r, 0.5, e5xx);
    let slow = Rule {
        name: "latency",
        applies: Applies::Aws,
        probability: p(r, 20, 200),
        effect: Effect::Latency(latency),
    };
    maybe(r, 0.5, slow);
    let lost_w = Rule {
        name: "lost-write",
        applies: Applies::Writes,
        probability: p(r, 10, 150),
        effect: Effect::Lost,
    };
    maybe(r, 0.5, lost_w);
    let lost_r = Rule {
        name: "lost-read",
        applies: Applies::Reads,
        probability: p(r, 5, 50),
        effect: Effect::Lost,
    };
    maybe(r, 0.3, lost_r);
    let hang = Rule {
        name: "hang",
        applies: Applies::Aws,
        probability: p(r, 2, 20),
        effect: Effect::Hang,
    };
    maybe(r, 0.3, hang);
    let stale_ms = if fast { 500 } else { r.range(1, 5) * 1_000 };
    let stale = Rule {
        name: "stale-read",
        applies: Applies::Reads,
        probability: p(r, 20, 200),
        effect: Effect::Stale(stale_ms),
    };
    maybe(r, 0.4, stale);
    let hook_err = Rule {
        name: "hook-5xx",
        applies: Applies::Hooks,
        probability: p(r, 10, 100),
        effect: Effect::ServerError,
    };
    maybe(r, 0.3, hook_err);
    Rules::new(rules, r.range(1, 3) as u8, seed)
}

fn draw_world_faults(r: &mut Rng, profile: Profile, minute: u64) -> WorldFaults {
    let mut f = WorldFaults::default();
    if r.chance(0.4) {
        f.task_start_failure = r.range(10, 150) as f64 / 1000.0;
    }
    if r.chance(0.5) {
        f.flap_mean_ms = r.range(2, 20) * minute;
        f.flap_duration_ms = SpanMs::new(minute / 12, minute * 3 / 2);
        f.flap_all = r.range(0, 500) as f64 / 1000.0;
    }
    if r.chance(0.3) {
        f.alarm_after_shift = r.range(50, 300) as f64 / 1000.0;
        f.alarm_delay_ms = SpanMs::new(minute / 12, 2 * minute);
        f.alarm_duration_ms = SpanMs::new(minute, 5 * minute);
    }
    if profile == Profile::Storm {
        f.neighbour_mean_ms = r.range(5, 30) * 1_000;
        f.neighbour_tokens = r.range(10, 60) as u32;
    }
    f
}
