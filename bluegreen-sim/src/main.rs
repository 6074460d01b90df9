//! `bluegreen-sim`: run seeds of the simulator, or replay a journal.
//!
//! ```text
//! bluegreen-sim run --seed 42 [--profile aws] [--trace] [--journal out.jsonl]
//! bluegreen-sim run --seeds 10000 [--from 0] [--profile all] [--jobs 2]
//! bluegreen-sim replay journal.jsonl [--world [--seeds 10] [--timings aws|fast]]
//! bluegreen-sim alarm-latency [--seeds 10000]
//! ```

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bluegreen_sim::harness::report::reproduce_command;
use bluegreen_sim::{Profile, RunReport, Sim, SimOptions, Summary};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bluegreen-sim",
    about = "Deterministic simulation of bluegreen deployments",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed (`--seed`) or many (`--seeds`).
    Run {
        /// Run this seed (twice, comparing traces).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Run this many seeds, from `--from`.
        #[arg(long)]
        seeds: Option<u64>,
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// calm | fast | aws | storm | all (all: rotate by seed).
        #[arg(long, default_value = "all")]
        profile: String,
        /// Print one line per event (single seed).
        #[arg(long)]
        trace: bool,
        /// Write every deployment's journal as JSON lines (single seed).
        #[arg(long)]
        journal: Option<std::path::PathBuf>,
        /// Worker threads for `--seeds` (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// With `--seeds`: also run every Nth seed twice and compare trace hashes.
        #[arg(long, default_value_t = 16)]
        determinism_every: u64,
        /// Skip each app's plan (its dry run costs about one deployment): no lower bound
        /// of AWS calls in the summary. For measuring the simulator alone.
        #[arg(long)]
        no_plans: bool,
    },
    /// Re-drive the core from a journal and report the first decision that differs.
    Replay {
        file: std::path::PathBuf,
        /// Rebuild a simulated world from the journal and run this build's machine in it
        /// (instead of re-driving the machine from the recorded answers).
        #[arg(long)]
        world: bool,
        /// With `--world`: seeds to run (varied timings around the recording).
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// With `--world`: the world's timings, `aws` or `fast`.
        #[arg(long, default_value = "aws")]
        timings: String,
    },
    /// Alarm → production back on 100 % blue (virtual time), with alarm events delivered
    /// (EventBridge's 0.1–1.5 s) and with polling alone, over the same seeds.
    AlarmLatency {
        #[arg(long, default_value_t = 10_000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// What a hold costs: AWS calls per minute of a ten-minute bake, every signal read at
    /// every poll vs the slow ones only every `signal_poll` (alarm events wired) — and
    /// alarm → blue for each.
    HoldCost {
        #[arg(long, default_value_t = 1_000)]
        seeds: u64,
    },
    /// Many deployments at once in one account on AWS's real token buckets, with the
    /// service's API budget and without it: throttled calls, calls against the plans'
    /// lower bound, and how long rollbacks waited for budget.
    ApiStorm {
        #[arg(long, default_value_t = 1_000)]
        deployments: u32,
        /// Every push lands within this many seconds.
        #[arg(long, default_value_t = 60)]
        window_s: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn profile_for(name: &str, seed: u64) -> Result<Profile, String> {
    if name == "all" {
        return Ok(Profile::for_seed(seed));
    }
    Profile::parse(name)
        .ok_or_else(|| format!("unknown profile {name:?} (calm, fast, aws, storm, all)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Panics are findings, reported with their seed; keep the default hook's message
    // out of the summary's way.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    match cli.command {
        Cmd::Run {
            seed: Some(seed),
            profile,
            trace,
            journal,
            ..
        } => run_one(seed, &profile, trace, journal),
        Cmd::Run {
            seeds: Some(n),
            from,
            profile,
            jobs,
            determinism_every,
            no_plans,
            ..
        } => run_many(from, n, &profile, jobs, determinism_every, no_plans),
        Cmd::Run { .. } => {
            eprintln!("bluegreen-sim run: give --seed S or --seeds N");
            ExitCode::from(2)
        }
        Cmd::Replay {
            file, world: false, ..
        } => replay(&file),
        Cmd::Replay {
            file,
            world: true,
            seeds,
            timings,
        } => replay_in_world(&file, seeds, &timings),
        Cmd::AlarmLatency { seeds, from } => alarm_latency(from, seeds),
        Cmd::HoldCost { seeds } => hold_cost(seeds),
        Cmd::ApiStorm {
            deployments,
            window_s,
            seed,
        } => api_storm(seed, deployments, window_s),
    }
}

fn hold_cost(seeds: u64) -> ExitCode {
    use bluegreen_sim::harness::AlarmEvents;
    use bluegreen_sim::measure::{alarm_to_blue_ms_with, bake_calls_per_minute, percentile};
    println!("one all-at-once deployment, AWS timings, 10 s poll, 10-minute bake, {seeds} seeds:");
    for (name, alarm_poll) in [
        ("every signal every poll", None),
        ("signal_poll 60 s + events", Some(60_000)),
        ("signal_poll 5 min + events", Some(300_000)),
    ] {
        let mut per_min: Vec<f64> = (1..=seeds)
            .filter_map(|seed| bake_calls_per_minute(seed, alarm_poll))
            .collect();
        per_min.sort_by(f64::total_cmp);
        let mut blue: Vec<u64> = (1..=seeds)
            .filter_map(|seed| alarm_to_blue_ms_with(seed, AlarmEvents::PROMPT, alarm_poll))
            .collect();
        blue.sort_unstable();
        println!(
            "  {name:<28} calls/min of bake p50 {:.1}  alarm → blue p50 {} ms p99 {} ms ({} and {} runs)",
            per_min.get(per_min.len() / 2).copied().unwrap_or(0.0),
            percentile(&blue, 50),
            percentile(&blue, 99),
            per_min.len(),
            blue.len()
        );
    }
    ExitCode::SUCCESS
}

fn api_storm(seed: u64, deployments: u32, window_s: u64) -> ExitCode {
    use bluegreen_core::budget::BudgetShape;
    use bluegreen_sim::measure::{api_storm, percentile};
    println!(
        "{deployments} deployments in one account within {window_s} s, AWS timings and buckets, seed {seed}:"
    );
    let mut bad = false;
    for (name, budget) in [
        ("no budget", None),
        ("budget 80 %, reserve 20 %", Some(BudgetShape::DEFAULT)),
    ] {
        let started = Instant::now();
        let r = api_storm(seed, deployments, window_s * 1_000, budget);
        println!(
            "  {name:<26} throttled {:>6}  calls/plan {:.2}x ({} / {})  outcomes {} completed, {} rolled back, {} failed",
            r.throttled,
            r.calls_per_plan(),
            r.calls,
            r.plan_calls_min,
            r.completed,
            r.rolled_back,
            r.failed
        );
        println!(
            "  {:<26} rollbacks that waited for budget {} of {} (p99 {} ms, max {} ms); all waits p50 {} ms p99 {} ms; last outcome after {:.1} min; violations {} ({:.1} s of CPU)",
            "",
            r.rollback_waits_ms.iter().filter(|&&w| w > 0).count(),
            r.rollback_waits_ms.len(),
            percentile(&r.rollback_waits_ms, 99),
            r.rollback_waits_ms.last().copied().unwrap_or(0),
            percentile(&r.waits_ms, 50),
            percentile(&r.waits_ms, 99),
            r.span_ms as f64 / 60_000.0,
            r.violations,
            started.elapsed().as_secs_f64()
        );
        let reasons: Vec<String> = r
            .reasons
            .iter()
            .map(|((o, why), n)| format!("{n} {o} ({why})"))
            .collect();
        println!("  {:<26} {}", "", reasons.join(", "));
        for v in &r.violation_samples {
            println!("    violation: {v}");
        }
        bad |= r.violations > 0;
    }
    if bad {
        eprintln!(
            "violations: run `bluegreen-sim api-storm` with the same arguments under a debugger"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn alarm_latency(from: u64, seeds: u64) -> ExitCode {
    use bluegreen_sim::harness::AlarmEvents;
    use bluegreen_sim::measure::{alarm_to_blue_ms, percentile};
    let started = Instant::now();
    let mut missing = 0u64;
    let mut rows = Vec::new();
    for (name, events) in [
        ("event-driven", AlarmEvents::PROMPT),
        ("poll-only", AlarmEvents::LOST),
    ] {
        let mut ms: Vec<u64> = (from..from + seeds)
            .filter_map(|seed| {
                let m = alarm_to_blue_ms(seed, events);
                if m.is_none() {
                    eprintln!("seed {seed} ({name}): no alarm rollback measured");
                }
                m
            })
            .collect();
        missing += seeds - ms.len() as u64;
        ms.sort_unstable();
        rows.push((name, ms));
    }
    println!(
        "alarm → production on 100 % blue, virtual time, {seeds} seeds (AWS timings, 10 s poll):"
    );
    for (name, ms) in &rows {
        println!(
            "  {name:<13} p50 {:>6} ms  p99 {:>6} ms  max {:>6} ms",
            percentile(ms, 50),
            percentile(ms, 99),
            ms.last().copied().unwrap_or(0)
        );
    }
    println!("({:.1} s of CPU)", started.elapsed().as_secs_f64());
    if missing > 0 {
        eprintln!("{missing} runs measured nothing");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run_one(seed: u64, profile: &str, trace: bool, journal: Option<std::path::PathBuf>) -> ExitCode {
    let profile = match profile_for(profile, seed) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let options = SimOptions {
        trace_text: trace,
        echo: trace,
        journal: journal.is_some(),
        ..SimOptions::default()
    };
    let first = Sim::run_seed(seed, profile, options);
    let again = Sim::run_seed(
        seed,
        profile,
        SimOptions {
            echo: false,
            ..options
        },
    );
    print_run(&first);
    let mut ok = first.ok();
    if first.trace_hash != again.trace_hash || first.text_hash != again.text_hash {
        println!(
            "DETERMINISM VIOLATED: trace hash {:016x} then {:016x}",
            first.trace_hash, again.trace_hash
        );
        ok = false;
    } else {
        println!(
            "determinism: ran twice, identical traces (hash {:016x}{})",
            first.trace_hash,
            first
                .text_hash
                .map(|h| format!(", text {h:016x}"))
                .unwrap_or_default()
        );
    }
    if let Some(path) = journal {
        let text: String = first
            .journals
            .iter()
            .map(|j| bluegreen_sim::replay::to_json_lines(j))
            .collect();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        println!(
            "journal: {} deployment(s) written to {}",
            first.journals.len(),
            path.display()
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        println!(
            "seed {seed} FAILED; reproduce: {}",
            reproduce_command(seed, profile)
        );
        ExitCode::FAILURE
    }
}

fn print_run(r: &RunReport) {
    println!(
        "seed {} ({}): {} deployment(s), {} events, {:.1} min simulated, {} AWS calls",
        r.seed,
        r.profile.name(),
        r.deployments.len(),
        r.events,
        r.sim_ms as f64 / 60_000.0,
        r.calls.total()
    );
    for d in &r.deployments {
        println!(
            "  {:<10} {:<12} {:<12} {:<12} {:<20} {:>6.1} min  {:>4} calls (plan lower bound {}), {} crash(es)",
            d.id,
            d.mode,
            d.strategy,
            d.outcome.map(|p| p.as_str()).unwrap_or("unfinished"),
            d.reason.map(|k| k.as_str()).unwrap_or("-"),
            d.duration_ms() as f64 / 60_000.0,
            d.aws_calls,
            d.plan_calls_min,
            d.crashes
        );
    }
    for v in &r.violations {
        println!("VIOLATION {v}");
    }
}

fn run_many(
    from: u64,
    n: u64,
    profile: &str,
    jobs: Option<usize>,
    det_every: u64,
    no_plans: bool,
) -> ExitCode {
    let options = SimOptions {
        no_plans,
        ..SimOptions::default()
    };
    if let Err(e) = profile_for(profile, 0) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let jobs = jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let next = AtomicU64::new(from);
    let total = Mutex::new(Summary::default());
    let nondeterministic = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut local = Summary::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= from + n {
                        break;
                    }
                    let p = profile_for(profile, seed).expect("checked");
                    let run = || Sim::run_seed(seed, p, options);
                    let r = match std::panic::catch_unwind(run) {
                        Ok(r) => r,
                        Err(e) => {
                            local.add_panic(seed, p, panic_text(&e));
                            continue;
                        }
                    };
                    if det_every > 0 && seed % det_every == 0 {
                        let again = Sim::run_seed(seed, p, options);
                        if again.trace_hash != r.trace_hash {
                            nondeterministic
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((seed, p));
                        }
                    }
                    local.add(&r);
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(local);
            });
        }
    });
    let wall = started.elapsed();
    let total = total.into_inner().unwrap_or_else(|e| e.into_inner());
    let nondet = nondeterministic
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    print!("{total}");
    println!(
        "wall time: {:.2} s on {jobs} thread(s): {:.0} seeds/s, {:.0} deployments/s",
        wall.as_secs_f64(),
        total.seeds as f64 / wall.as_secs_f64(),
        total.deployments as f64 / wall.as_secs_f64()
    );
    for (seed, p) in &nondet {
        println!(
            "DETERMINISM VIOLATED seed {seed}; reproduce: {}",
            reproduce_command(*seed, *p)
        );
    }
    if total.violations() == 0 && nondet.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

fn replay_in_world(file: &std::path::Path, seeds: u64, timings: &str) -> ExitCode {
    let profile = match timings {
        "aws" => bluegreen_sim::WorldProfile::aws(),
        "fast" => bluegreen_sim::WorldProfile::fast(),
        other => {
            eprintln!("--timings {other:?}: aws or fast");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match bluegreen_sim::replay_world::replay_file(&text, seeds, &profile) {
        Ok(replays) => {
            let mut same = true;
            for r in &replays {
                print!("{r}");
                same &= r.same_everywhere();
            }
            if same {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn replay(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let reports =
        match bluegreen_sim::replay::parse(&text).and_then(bluegreen_sim::replay::replay_all) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
    let mut differs = false;
    for r in &reports {
        println!("{}", bluegreen_sim::replay::describe(r));
        differs |= r.divergence.is_some();
    }
    if differs {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
