//! What a run leaves behind (its report), and the summary over many runs.

use std::collections::BTreeMap;
use std::fmt;

use bluegreen_core::journal::JournalLine;
use bluegreen_core::{PhaseName, ReasonKind, Timestamp};
use serde::Serialize;

use super::{Profile, Sim};
use crate::auditor::Violation;
use crate::world::CallStats;

/// One deployment's outcome and costs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepReport {
    pub id: String,
    pub app: String,
    pub mode: &'static str,
    pub strategy: &'static str,
    pub outcome: Option<PhaseName>,
    pub reason: Option<ReasonKind>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// AWS calls the world saw from this deployment (throttled ones included).
    pub aws_calls: u64,
    pub commands: u64,
    /// The plan's lower bound of AWS calls for a successful deployment.
    pub plan_calls_min: u64,
    pub crashes: u32,
    /// From CloudWatch finding a watched alarm in ALARM to the rollback's listener write
    /// reaching the world (production back on blue), for a rollback because of an alarm.
    pub alarm_to_blue_ms: Option<u64>,
    /// Time its commands waited for the service's API budget, in all and while rolling
    /// back.
    pub budget_wait_ms: u64,
    pub rollback_budget_wait_ms: u64,
}

impl DepReport {
    pub fn duration_ms(&self) -> u64 {
        self.ended_at
            .map(|e| e.ms_since(self.started_at))
            .unwrap_or(0)
    }
}

/// One run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub profile: Profile,
    pub violations: Vec<Violation>,
    pub deployments: Vec<DepReport>,
    /// Hash of the run's structured events (same seed → same hash).
    pub trace_hash: u64,
    /// Hash of the text trace, when it was kept.
    pub text_hash: Option<u64>,
    pub trace_lines: Vec<String>,
    pub events: u64,
    pub world_transitions: u64,
    pub sim_ms: u64,
    pub calls: CallStats,
    pub dark_episodes: u64,
    pub unfixable_dark: u64,
    pub flaps: u64,
    pub start_failures: u64,
    pub alarms_forced: u64,
    pub faults_fired: u64,
    pub superseded: u32,
    pub audit_checks: u64,
    /// Alarm events delivered to the webhook, lost on the way, and acted on (a
    /// deployment's rollback started by one).
    pub alarm_events: [u64; 3],
    /// Per deployment, when journaling was on.
    pub journals: Vec<Vec<JournalLine>>,
}

impl RunReport {
    pub(crate) fn build(sim: Sim) -> RunReport {
        let deployments = sim
            .deps
            .iter()
            .map(|d| DepReport {
                id: d.id.to_string(),
                app: sim.world.apps[d.app as usize].name.to_string(),
                mode: d.spec.mode().as_str(),
                strategy: d.spec.strategy.name(),
                outcome: d.outcome,
                reason: d.reason,
                started_at: d.started_at,
                ended_at: d.ended_at,
                aws_calls: d.aws_calls,
                commands: d.commands,
                plan_calls_min: d.plan_calls_min,
                crashes: d.crashes,
                alarm_to_blue_ms: d.alarm_to_blue_ms,
                budget_wait_ms: d.budget_wait_ms,
                rollback_budget_wait_ms: d.rollback_budget_wait_ms,
            })
            .collect();
        let journals = sim
            .deps
            .iter()
            .filter_map(|d| d.journal.as_ref().map(|j| j.lines().to_vec()))
            .collect();
        RunReport {
            seed: sim.scenario.seed,
            profile: sim.scenario.profile,
            violations: sim.auditor.violations.clone(),
            deployments,
            trace_hash: sim.trace.hash(),
            text_hash: sim.trace.text_hash(),
            trace_lines: sim.trace.lines().to_vec(),
            events: sim.events,
            world_transitions: sim.world.transitions,
            sim_ms: sim.now().ms_since(sim.scenario.start),
            calls: sim.world.api.stats.clone(),
            dark_episodes: sim.auditor.dark_episodes,
            unfixable_dark: sim.auditor.unfixable_dark,
            flaps: sim.world.faults.flaps,
            start_failures: sim.world.faults.start_failures,
            alarms_forced: sim.world.faults.alarms_forced,
            faults_fired: sim.scenario.rules.fired.iter().sum(),
            superseded: sim.superseded,
            audit_checks: sim.auditor.checks,
            alarm_events: [
                sim.alarm_events_delivered,
                sim.alarm_events_lost,
                sim.alarm_events_acted,
            ],
            journals,
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one-line command that reproduces this run.
    pub fn reproduce(&self) -> String {
        reproduce_command(self.seed, self.profile)
    }
}

pub fn reproduce_command(seed: u64, profile: Profile) -> String {
    format!(
        "cargo run --release -p bluegreen-sim -- run --seed {seed} --profile {} --trace",
        profile.name()
    )
}

/// Calls per deployment against the plan, for one strategy (successful deployments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CallsVsPlan {
    pub deployments: u64,
    pub calls: u64,
    pub plan_min: u64,
}

/// Many runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub seeds: u64,
    pub failed: Vec<(u64, &'static str, String)>,
    pub deployments: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub rollbacks_by_reason: BTreeMap<&'static str, u64>,
    pub failed_by_reason: BTreeMap<&'static str, u64>,
    pub sim_ms: u64,
    pub deployment_ms: u64,
    pub aws_calls: u64,
    pub commands: u64,
    pub by_strategy: BTreeMap<&'static str, CallsVsPlan>,
    pub events: u64,
    pub crashes: u64,
    pub dark_episodes: u64,
    pub unfixable_dark: u64,
    pub flaps: u64,
    pub faults_fired: u64,
    pub throttled: u64,
    pub superseded: u64,
    pub audit_checks: u64,
    pub panics: u64,
    /// Deployments that ended `failed` (an operator must act): seed, profile, id, reason.
    pub failed_outcomes: Vec<(u64, &'static str, String, String)>,
}

/// Failing seeds kept in a summary.
pub const FAILED_KEPT_MAX: usize = 100;

impl Summary {
    pub fn add(&mut self, r: &RunReport) {
        self.seeds += 1;
        if let Some(v) = r.violations.first()
            && self.failed.len() < FAILED_KEPT_MAX
        {
            self.failed.push((r.seed, r.profile.name(), v.to_string()));
        }
        self.sim_ms += r.sim_ms;
        self.events += r.events;
        self.dark_episodes += r.dark_episodes;
        self.unfixable_dark += r.unfixable_dark;
        self.flaps += r.flaps;
        self.faults_fired += r.faults_fired;
        self.throttled += r.calls.throttled.iter().sum::<u64>();
        self.superseded += u64::from(r.superseded);
        self.audit_checks += r.audit_checks;
        for d in &r.deployments {
            self.deployments += 1;
            let outcome = d.outcome.map(|p| p.as_str()).unwrap_or("unfinished");
            *self.outcomes.entry(outcome).or_default() += 1;
            match (d.outcome, d.reason) {
                (Some(PhaseName::RolledBack), Some(k)) => {
                    *self.rollbacks_by_reason.entry(k.as_str()).or_default() += 1
                }
                (Some(PhaseName::Failed), Some(k)) => {
                    *self.failed_by_reason.entry(k.as_str()).or_default() += 1;
                    if self.failed_outcomes.len() < FAILED_KEPT_MAX {
                        let p = r.profile.name();
                        self.failed_outcomes.push((
                            r.seed,
                            p,
                            d.id.clone(),
                            k.as_str().to_string(),
                        ));
                    }
                }
                _ => {}
            }
            self.deployment_ms += d.duration_ms();
            self.aws_calls += d.aws_calls;
            self.commands += d.commands;
            self.crashes += u64::from(d.crashes);
            if d.outcome == Some(PhaseName::Completed) {
                let s = self.by_strategy.entry(d.strategy).or_default();
                s.deployments += 1;
                s.calls += d.aws_calls;
                s.plan_min += d.plan_calls_min;
            }
        }
    }

    /// A seed whose run panicked (in the simulator or in the machine).
    pub fn add_panic(&mut self, seed: u64, profile: Profile, message: String) {
        self.seeds += 1;
        self.panics += 1;
        if self.failed.len() < FAILED_KEPT_MAX {
            self.failed
                .push((seed, profile.name(), format!("PANIC: {message}")));
        }
    }

    pub fn merge(&mut self, o: Summary) {
        self.panics += o.panics;
        for f in o.failed_outcomes {
            if self.failed_outcomes.len() < FAILED_KEPT_MAX {
                self.failed_outcomes.push(f);
            }
        }
        self.seeds += o.seeds;
        for f in o.failed {
            if self.failed.len() < FAILED_KEPT_MAX {
                self.failed.push(f);
            }
        }
        self.deployments += o.deployments;
        for (k, v) in o.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        for (k, v) in o.rollbacks_by_reason {
            *self.rollbacks_by_reason.entry(k).or_default() += v;
        }
        for (k, v) in o.failed_by_reason {
            *self.failed_by_reason.entry(k).or_default() += v;
        }
        for (k, v) in o.by_strategy {
            let s = self.by_strategy.entry(k).or_default();
            s.deployments += v.deployments;
            s.calls += v.calls;
            s.plan_min += v.plan_min;
        }
        self.sim_ms += o.sim_ms;
        self.deployment_ms += o.deployment_ms;
        self.aws_calls += o.aws_calls;
        self.commands += o.commands;
        self.events += o.events;
        self.crashes += o.crashes;
        self.dark_episodes += o.dark_episodes;
        self.unfixable_dark += o.unfixable_dark;
        self.flaps += o.flaps;
        self.faults_fired += o.faults_fired;
        self.throttled += o.throttled;
        self.superseded += o.superseded;
        self.audit_checks += o.audit_checks;
    }

    pub fn violations(&self) -> usize {
        self.failed.len()
    }
}

fn per(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seeds: {}   deployments: {}   seeds with violations: {}",
            self.seeds,
            self.deployments,
            self.failed.len()
        )?;
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "outcomes: {}", outcomes.join(", "))?;
        let rb: Vec<String> = self
            .rollbacks_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            f,
            "rollbacks by reason: {}",
            if rb.is_empty() {
                "none".into()
            } else {
                rb.join(", ")
            }
        )?;
        if !self.failed_by_reason.is_empty() {
            let fr: Vec<String> = self
                .failed_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(f, "failed by reason: {}", fr.join(", "))?;
            for (seed, profile, id, reason) in self.failed_outcomes.iter().take(10) {
                writeln!(f, "  failed: seed {seed} ({profile}) {id}: {reason}")?;
            }
        }
        writeln!(
            f,
            "simulated time: {:.1} h total, {:.1} min per seed, {:.1} min per deployment",
            self.sim_ms as f64 / 3.6e6,
            per(self.sim_ms, self.seeds) / 60_000.0,
            per(self.deployment_ms, self.deployments) / 60_000.0
        )?;
        writeln!(
            f,
            "AWS calls per deployment: {:.1} (commands {:.1}); throttled calls {}",
            per(self.aws_calls, self.deployments),
            per(self.commands, self.deployments),
            self.throttled
        )?;
        for (strategy, s) in &self.by_strategy {
            writeln!(
                f,
                "  completed {strategy:<12} {:>7} deployments: {:>6.1} calls vs plan lower bound {:>6.1} ({:.2}x)",
                s.deployments,
                per(s.calls, s.deployments),
                per(s.plan_min, s.deployments),
                per(s.calls, s.plan_min)
            )?;
        }
        writeln!(
            f,
            "faults: {} injected verdicts, {} flapped targets, {} controller crashes, {} pushes superseded",
            self.faults_fired, self.flaps, self.crashes, self.superseded
        )?;
        writeln!(
            f,
            "auditor: {} checks, {} dark episodes ({} with no standby left), {} events",
            self.audit_checks, self.dark_episodes, self.unfixable_dark, self.events
        )?;
        for (seed, profile, v) in &self.failed {
            writeln!(f, "FAILED seed {seed} ({profile}): {v}")?;
            writeln!(
                f,
                "  reproduce: {}",
                reproduce_command(*seed, Profile::parse(profile).unwrap_or(Profile::Aws))
            )?;
        }
        Ok(())
    }
}
