//! One deployment's driver: the turn loop.
//!
//! A turn: read the clock once; for each input gathered since the last turn, journal it,
//! `handle` it, drain `poll` until `Idle` and journal every output; persist the journal
//! lines and the snapshot in one transaction; only then answer operators and hand the
//! turn's commands to the cloud. Then wait for the next input: a command result, an
//! operator request, the machine's wake-up time, or shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bluegreen_core::journal::{JournalEntry, JournalLine, OUTPUTS_PER_INPUT_MAX};
use bluegreen_core::{
    Cloud, Command, CommandError, CommandResult, Deployment, DeploymentId, Input, Notice, Output,
    Phase, PhaseName, Refused, Timestamp,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Control, Runner};
use crate::store::{RowState, Turn};
use crate::telemetry;

/// Attempts to persist one turn before the driver gives up (and the deployment waits for
/// the next start).
const PERSIST_ATTEMPTS_MAX: u32 = 5;

type Flight = (Command, Result<CommandResult, CommandError>);
type Reply = oneshot::Sender<Result<(), Refused>>;

/// Driver-local bookkeeping for metrics.
struct Watch {
    phase_since: Timestamp,
}

pub(crate) async fn drive<C: Cloud + 'static>(
    runner: Runner<C>,
    d: Deployment,
    seq: u64,
    first: Input,
    rx: mpsc::Receiver<Control>,
    alive: mpsc::Sender<()>,
) {
    let span = tracing::info_span!("deployment", id = %d.id(), app = %d.spec().app);
    let inner = runner.inner();
    inner.running.fetch_add(1, Ordering::Relaxed);
    telemetry::in_flight(1.0);
    let app = d.spec().app.clone();
    let id = d.id().clone();
    let finished = run(&runner, d, seq, first, rx).instrument(span).await;
    runner.inner().running.fetch_sub(1, Ordering::Relaxed);
    telemetry::in_flight(-1.0);
    if finished {
        runner.finished(&app, &id).await;
    } else {
        runner.detached(&app, &id).await;
    }
    drop(alive);
}

/// Drive until the deployment is terminal (`true`) or the driver must stop (`false`).
async fn run<C: Cloud + 'static>(
    runner: &Runner<C>,
    mut d: Deployment,
    mut seq: u64,
    first: Input,
    mut rx: mpsc::Receiver<Control>,
) -> bool {
    let inner = runner.inner();
    let id = d.id().clone();
    let mut inbox: Vec<(Input, Option<Reply>)> = vec![(first, None)];
    let mut flights: JoinSet<Flight> = JoinSet::new();
    let mut shutdown = inner.shutdown.subscribe();
    let mut stopping = *shutdown.borrow();
    let mut grace_until: Option<tokio::time::Instant> = None;
    let mut wake_at: Option<Timestamp> = None;
    let mut watch = Watch {
        phase_since: d.history().last().map(|t| t.at).unwrap_or(d.created_at()),
    };
    // Bounded by the deployment itself: every iteration handles at least one input or
    // waits for one, and the machine reaches a terminal phase within its timeouts.
    loop {
        if !inbox.is_empty() {
            // ---- the turn ----
            let now = inner.clock.now();
            let mut lines = Vec::new();
            let mut commands = Vec::new();
            let mut replies = Vec::new();
            for (input, reply) in inbox.drain(..) {
                seq += 1;
                lines.push(line(
                    &id,
                    seq,
                    now,
                    JournalEntry::Input {
                        input: input.clone(),
                    },
                ));
                let handled = d.handle(now, input);
                if let Some(reply) = reply {
                    replies.push((reply, handled));
                }
                for _ in 0..OUTPUTS_PER_INPUT_MAX {
                    let out = d.poll(now);
                    seq += 1;
                    lines.push(line(
                        &id,
                        seq,
                        now,
                        JournalEntry::Output {
                            output: out.clone(),
                        },
                    ));
                    match out {
                        Output::Command(c) => commands.push(c),
                        Output::Notice(n) => notice(&d, &n, &mut watch),
                        Output::Idle { wake_at: w } => {
                            wake_at = w;
                            break;
                        }
                    }
                }
            }
            let terminal = d.is_terminal();
            let turn = Turn {
                id: id.clone(),
                lines,
                snapshot: serde_json::to_string(&d).expect("deployments serialise"),
                phase: d.phase_name().as_str().to_string(),
                state: if terminal {
                    RowState::Finished
                } else {
                    RowState::Running
                },
                seq,
                updated_at: d.updated_at(),
            };
            if !persist(runner, std::sync::Arc::new(turn)).await {
                // Nothing of this turn reached the cloud; the last persisted turn is
                // where the next start resumes.
                return false;
            }
            for (reply, handled) in replies {
                let _ = reply.send(handled);
            }
            if let Some(n) = inner.notify.get() {
                n.after_turn(&d);
            } // issue 12: notifications, after the turn is on disk
            if terminal {
                outcome(&d);
                return true;
            }
            if !stopping {
                for c in commands {
                    dispatch(runner, &mut flights, c, &d);
                }
            }
            // While stopping, new commands stay in the snapshot's in-flight set: the next
            // start re-sends the reads and resolves the writes (`Input::Restarted`).
        }
        if stopping && flights.is_empty() {
            return false;
        }
        // ---- wait for the next input ----
        let sleep = wake_at.map(|at| inner.clock.until(at));
        tokio::select! {
            biased;
            Some(joined) = flights.join_next(), if !flights.is_empty() => {
                take(&d, joined, &mut inbox);
                while let Some(joined) = flights.try_join_next() {
                    take(&d, joined, &mut inbox);
                }
            }
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                grace_until = Some(tokio::time::Instant::now() + inner.limits.shutdown_grace);
            }
            _ = tokio::time::sleep_until(grace_until.unwrap_or_else(tokio::time::Instant::now)), if stopping => {
                tracing::warn!(commands = flights.len(), "shutdown grace over; commands still out are resolved at the next start");
                flights.abort_all();
                return false;
            }
            control = rx.recv(), if !stopping => match control {
                Some(Control::Operator(request, reply)) => inbox.push((Input::Operator(request), Some(reply))),
                None => {} // the runner dropped the sender; keep going on results and timers
            },
            _ = tokio::time::sleep(sleep.unwrap_or(Duration::ZERO)), if sleep.is_some() && !stopping => {
                inbox.push((Input::Wake, None));
            }
        }
    }
}

fn line(id: &DeploymentId, seq: u64, at: Timestamp, entry: JournalEntry) -> JournalLine {
    JournalLine {
        deployment: id.clone(),
        seq,
        at,
        entry,
    }
}

/// A command result becomes an input unless it answers an attempt the machine no longer
/// waits for (a retry reuses the id: an old attempt's late answer must not stand in for
/// the new one).
fn take(
    d: &Deployment,
    joined: Result<Flight, tokio::task::JoinError>,
    inbox: &mut Vec<(Input, Option<Reply>)>,
) {
    match joined {
        Ok((command, result)) => {
            let current = d
                .in_flight()
                .any(|c| c.id == command.id && c.attempt == command.attempt);
            if current {
                inbox.push((
                    Input::CommandDone {
                        id: command.id,
                        result,
                    },
                    None,
                ));
            } else {
                tracing::debug!(command = %command.id, attempt = command.attempt, "dropping a stale result");
            }
        }
        // A panicking executor: the command stays in flight until its deadline, when the
        // machine treats it as lost.
        Err(e) => tracing::error!(error = %e, "a command's executor panicked"),
    }
}

fn dispatch<C: Cloud + 'static>(
    runner: &Runner<C>,
    flights: &mut JoinSet<Flight>,
    command: Command,
    d: &Deployment,
) {
    let inner = runner.inner();
    let cloud = inner.cloud.clone();
    let permits = inner.permits.clone();
    // A backstop only: the machine's own command deadline decides (it treats a command
    // with no answer by then as lost); this just stops a hung call from living forever.
    let limit = inner
        .clock
        .until(d.updated_at().plus_ms(d.spec().timeouts.command_ms))
        + Duration::from_secs(5);
    flights.spawn(async move {
        let _permit = permits
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let name = command.kind.name();
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(limit, cloud.execute(&command)).await {
            Ok(r) => r,
            Err(_) => Err(CommandError::ambiguous(
                "Timeout",
                "the executor did not answer in time",
            )),
        };
        telemetry::command(name, &result, started.elapsed());
        (command, result)
    });
}

async fn persist<C: Cloud + 'static>(runner: &Runner<C>, turn: std::sync::Arc<Turn>) -> bool {
    let store = &runner.inner().store;
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=PERSIST_ATTEMPTS_MAX {
        match store.persist(turn.clone()).await {
            Ok(()) => return true,
            Err(e) if attempt < PERSIST_ATTEMPTS_MAX => {
                tracing::warn!(error = %e, attempt, "persisting a turn failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "persisting a turn failed; the deployment stops here and resumes at the next start");
            }
        }
    }
    false
}

fn notice(d: &Deployment, n: &Notice, watch: &mut Watch) {
    match n {
        Notice::Transition(t) => {
            tracing::info!(from = %t.from, to = %t.to, reason = %t.reason, "transition");
            telemetry::phase_duration(t.from, t.at.ms_since(watch.phase_since));
            watch.phase_since = t.at;
            if t.to == PhaseName::Rollback {
                let kind = match d.phase() {
                    Phase::Rollback(r) => r.reason.kind.as_str(),
                    _ => d
                        .outcome_reason()
                        .map(|r| r.kind.as_str())
                        .unwrap_or("unknown"),
                };
                telemetry::rollback(kind);
            }
        }
        Notice::Retrying {
            id, attempt, error, ..
        } => {
            tracing::warn!(command = %id, attempt, error = %error, "retrying");
        }
        Notice::Resolving { id, error } => {
            tracing::warn!(command = %id, error = %error, "resolving an ambiguous write");
        }
        Notice::HookAnswered { name, verdict } => {
            tracing::info!(hook = %name, ?verdict, "hook answered")
        }
        Notice::RollbackHookFailed { name, reason } => {
            tracing::warn!(hook = %name, %reason, "rollback hook failed; the rollback goes on")
        }
        Notice::Operator { request } => {
            tracing::info!(request = request.name(), "operator request accepted")
        }
    }
}

fn outcome(d: &Deployment) {
    let phase = d.phase_name();
    match d.outcome_reason() {
        Some(reason) => tracing::info!(outcome = %phase, %reason, "deployment finished"),
        None => tracing::info!(outcome = %phase, "deployment finished"),
    }
    telemetry::outcome(phase);
}
