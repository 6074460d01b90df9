//! One deployment's driver: the turn loop.
//!
//! A turn: read the clock once; for each input gathered since the last turn, journal it,
//! `handle` it, drain `poll` until `Idle` and journal every output; persist the journal
//! lines and the snapshot in one transaction — fenced by the app's lease epoch; only
//! then answer operators and hand the turn's commands to the cloud (and only while this
//! replica's lease is good). Then wait for the next input: a command result, an
//! operator request, the machine's wake-up time, a stop (lease lost), or shutdown.
//!
//! A panic — in the machine, the driver or the cloud adapter — fails this deployment
//! (the world is unknown: an operator must look) and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bluegreen_core::journal::{JournalEntry, JournalLine, OUTPUTS_PER_INPUT_MAX};
use bluegreen_core::{
    Cloud, Command, CommandError, CommandKind, CommandResult, Deployment, DeploymentId, Input,
    Notice, Output, Phase, PhaseName, Refused, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::{Control, Runner};
use crate::store::{Fence, RowState, StoreError, Turn};
use crate::telemetry;
use bluegreen_core::machine::AlarmVerdict;

/// Backoff between attempts to persist a turn while the store does not answer: from the
/// first to the longest delay, doubling (bounded in total by `Limits::store_retry_max`).
const PERSIST_DELAY_FIRST: Duration = Duration::from_millis(100);
const PERSIST_DELAY_MAX: Duration = Duration::from_secs(5);

/// How a driver ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The deployment reached this terminal phase (persisted).
    Finished(PhaseName),
    /// Stopped without finishing (shutdown, or the store stayed down): whoever holds the
    /// app's lease resumes it from its last persisted turn.
    Detached,
    /// Its lease was lost (a write was refused, or the replica learnt another holds the
    /// app): it sent nothing more.
    Fenced,
}

/// Why a turn could not be persisted.
enum PersistFailed {
    Fenced,
    /// The store did not answer for `store_retry_max`, or the driver was stopped.
    GaveUp,
}

type Flight = (Arc<Command>, Result<CommandResult, CommandError>);
type Reply = oneshot::Sender<Result<(), Refused>>;

/// Driver-local bookkeeping for metrics.
struct Watch {
    phase_since: Timestamp,
}

/// Drive until the deployment is terminal or the driver must stop.
pub(crate) async fn run<C: Cloud + 'static>(
    runner: Runner<C>,
    mut d: Deployment,
    mut seq: u64,
    first: Input,
    mut rx: mpsc::Receiver<Control>,
    mut stop: watch::Receiver<bool>,
    fence: Fence,
) -> End {
    let runner = &runner;
    let inner = runner.inner();
    let id = d.id().clone();
    let mut inbox: Vec<(Input, Option<Reply>)> = vec![(first, None)];
    // A command's executor panicked: the deployment fails at the next turn.
    let mut panicked: Option<String> = None;
    let mut flights: JoinSet<Flight> = JoinSet::new();
    let mut shutdown = inner.shutdown.subscribe();
    let mut stopping = *shutdown.borrow();
    let mut grace_until: Option<tokio::time::Instant> = None;
    let mut wake_at: Option<Timestamp> = None;
    let mut watch = Watch {
        phase_since: d.history().last().map(|t| t.at).unwrap_or(d.created_at()),
    };
    // The app's Application Auto Scaling target follows the live slot, placed in the
    // background (latest wins) so a rollback's first write never waits for it.
    let (place_tx, place_rx) = tokio::sync::watch::channel(None::<CommandKind>);
    let placer = tokio::spawn(place_scaling(runner.clone(), id.clone(), place_rx));
    let placer = AbortOnDrop::new(placer);
    // Bounded by the deployment itself: every iteration handles at least one input or
    // waits for one, and the machine reaches a terminal phase within its timeouts.
    loop {
        if *stop.borrow() {
            flights.abort_all();
            return End::Fenced;
        }
        if !inbox.is_empty() || panicked.is_some() {
            // ---- the turn ----
            let now = inner.clock.now();
            let mut lines = Vec::new();
            let mut commands = Vec::new();
            let mut replies = Vec::new();
            if let Some(why) = panicked.take() {
                d.fail_externally(now, why);
                inbox.clear();
                drain(
                    &mut d,
                    now,
                    &id,
                    &mut seq,
                    &mut lines,
                    &mut commands,
                    &mut wake_at,
                    &mut watch,
                );
                commands.clear();
            }
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
                // An alarm event is always accepted by the machine; its answer is whether
                // it started the rollback, and if not, why.
                let verdict = match &input {
                    Input::Alarm(e) => match d.alarm_verdict(e) {
                        AlarmVerdict::RollsBack => None,
                        AlarmVerdict::Ignored(why) => Some(Refused {
                            request: "alarm".into(),
                            phase: d.phase_name(),
                            reason: why.to_string(),
                        }),
                    },
                    _ => None,
                };
                let handled = d.handle(now, input).and(verdict.map_or(Ok(()), Err));
                if let Some(reply) = reply {
                    replies.push((reply, handled));
                }
                drain(
                    &mut d,
                    now,
                    &id,
                    &mut seq,
                    &mut lines,
                    &mut commands,
                    &mut wake_at,
                    &mut watch,
                );
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
            match persist(runner, std::sync::Arc::new(turn), &fence, &mut stop).await {
                Ok(()) => {}
                // Nothing of this turn reached the cloud; the last persisted turn is
                // where whoever drives the app next resumes.
                Err(PersistFailed::Fenced) => {
                    flights.abort_all();
                    return End::Fenced;
                }
                Err(PersistFailed::GaveUp) => {
                    flights.abort_all();
                    return End::Detached;
                }
            }
            for (reply, handled) in replies {
                let _ = reply.send(handled);
            }
            let placement = d.scaling_placement();
            place_tx.send_if_modified(|current| {
                let changed = *current != placement;
                if changed {
                    current.clone_from(&placement);
                }
                changed
            });
            if let Some(n) = inner.notify.get() {
                n.after_turn(&d);
            } // notifications, after the turn is on disk
            if terminal {
                outcome(&d);
                flights.abort_all();
                tag_outcome(runner, &d).await;
                // Let the last placement (live slot at the outcome) finish, bounded.
                drop(place_tx);
                placer.finish(PLACE_FINISH_MAX).await;
                return End::Finished(d.phase_name());
            }
            if !stopping && !commands.is_empty() {
                // Only while this replica's lease is good: after a pause or a store
                // outage the app may have a new holder, which the replica learns before
                // its lease counts as good again (and stops this driver).
                if !lease_good(runner, &mut stop).await {
                    flights.abort_all();
                    return End::Fenced;
                }
                for c in commands {
                    dispatch(runner, &mut flights, c, &d);
                }
            }
            // While stopping, new commands stay in the snapshot's in-flight set: the next
            // start re-sends the reads and resolves the writes (`Input::Restarted`).
        }
        if stopping && flights.is_empty() {
            return End::Detached;
        }
        // ---- wait for the next input ----
        let sleep = wake_at.map(|at| inner.clock.until(at));
        tokio::select! {
            biased;
            _ = stop.changed() => {
                flights.abort_all();
                return End::Fenced;
            }
            Some(joined) = flights.join_next(), if !flights.is_empty() => {
                take(&d, joined, &mut inbox, &mut panicked);
                while let Some(joined) = flights.try_join_next() {
                    take(&d, joined, &mut inbox, &mut panicked);
                }
            }
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                grace_until = Some(tokio::time::Instant::now() + inner.limits.shutdown_grace);
            }
            _ = tokio::time::sleep_until(grace_until.unwrap_or_else(tokio::time::Instant::now)), if stopping => {
                tracing::warn!(commands = flights.len(), "shutdown grace over; commands still out are resolved at the next start");
                flights.abort_all();
                return End::Detached;
            }
            control = rx.recv(), if !stopping => match control {
                Some(Control::Signal(signal, reply)) => inbox.push((signal.into_input(), Some(reply))),
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
    panicked: &mut Option<String>,
) {
    match joined {
        Ok((command, result)) => {
            let current = d
                .in_flight()
                .any(|c| c.id == command.id && c.attempt == command.attempt);
            if current {
                inbox.push((
                    Input::CommandDone {
                        id: command.id.clone(),
                        result,
                    },
                    None,
                ));
            } else {
                tracing::debug!(command = %command.id, attempt = command.attempt, "dropping a stale result");
            }
        }
        // A panicking executor: a bug in the cloud adapter. What it did at AWS is
        // unknown, so the deployment fails (its app is held for an operator) rather
        // than guess; nothing else is affected.
        Err(e) if e.is_panic() => {
            let message = panic_message(e.into_panic());
            tracing::error!(%message, "a command's executor panicked; the deployment fails");
            panicked.get_or_insert(format!("the cloud adapter panicked: {message}"));
        }
        Err(e) => tracing::error!(error = %e, "a command's executor was cancelled"),
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    crate::store::redact_text(&text)
}

/// Drain the machine's outputs after an input, journalling each.
#[allow(clippy::too_many_arguments)]
fn drain(
    d: &mut Deployment,
    now: Timestamp,
    id: &DeploymentId,
    seq: &mut u64,
    lines: &mut Vec<JournalLine>,
    commands: &mut Vec<Arc<Command>>,
    wake_at: &mut Option<Timestamp>,
    watch: &mut Watch,
) {
    for _ in 0..OUTPUTS_PER_INPUT_MAX {
        let out = d.poll(now);
        *seq += 1;
        lines.push(line(
            id,
            *seq,
            now,
            JournalEntry::Output {
                output: out.clone(),
            },
        ));
        match out {
            Output::Command(c) => commands.push(c),
            Output::Notice(n) => notice(d, &n, watch),
            Output::Idle { wake_at: w } => {
                *wake_at = w;
                break;
            }
        }
    }
}

/// Wait until this replica's lease is good; `false` when the driver is stopped first.
async fn lease_good<C: Cloud + 'static>(
    runner: &Runner<C>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let standing = &runner.inner().standing;
    let mut ok = standing.ok.subscribe();
    let mut warned = false;
    // Bounded by the stop signal: a replica that cannot renew its lease has its apps
    // taken over, and learns it (and stops this driver) when the store answers again.
    loop {
        if *stop.borrow() {
            return false;
        }
        if standing.is_valid() {
            return true;
        }
        if !warned {
            tracing::warn!(
                "this replica's lease lapsed; holding the turn's commands until it is renewed"
            );
            warned = true;
        }
        tokio::select! {
            _ = stop.changed() => return false,
            _ = ok.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// A driver panicked: fail the deployment from its last persisted state, with the reason
/// in its journal, so its app is held for an operator per the admission rules.
pub(crate) async fn contain_panic<C: Cloud + 'static>(
    runner: &Runner<C>,
    fence: &Fence,
    id: &DeploymentId,
    message: String,
) -> End {
    let inner = runner.inner();
    tracing::error!(%id, %message, "a deployment's driver panicked; the deployment fails");
    let stored = match inner.store.get(id.as_str()).await {
        Ok(Some(s)) => s,
        _ => return End::Detached,
    };
    if stored.state != RowState::Running {
        return End::Detached;
    }
    let mut d = stored.deployment;
    let mut seq = stored.seq;
    let now = inner.clock.now();
    d.fail_externally(
        now,
        format!("the controller panicked while driving it: {message}"),
    );
    let mut lines = Vec::new();
    let (mut commands, mut wake_at) = (Vec::new(), None);
    let mut watch = Watch { phase_since: now };
    drain(
        &mut d,
        now,
        id,
        &mut seq,
        &mut lines,
        &mut commands,
        &mut wake_at,
        &mut watch,
    );
    let turn = Turn {
        id: id.clone(),
        lines,
        snapshot: serde_json::to_string(&d).expect("deployments serialise"),
        phase: d.phase_name().as_str().to_string(),
        state: RowState::Finished,
        seq,
        updated_at: d.updated_at(),
    };
    let (_never, mut stop) = watch::channel(false);
    match persist(runner, std::sync::Arc::new(turn), fence, &mut stop).await {
        Ok(()) => {
            if let Some(n) = inner.notify.get() {
                n.after_turn(&d);
            }
            outcome(&d);
            End::Finished(d.phase_name())
        }
        Err(PersistFailed::Fenced) => End::Fenced,
        Err(PersistFailed::GaveUp) => End::Detached,
    }
}

/// Attempts and per-attempt bound for placing the scalable target (best effort: a
/// failure is logged and counted; the next placement, or the next driver of the app,
/// tries again — the move is desired state).
const PLACE_ATTEMPTS_MAX: u32 = 3;
const PLACE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a finished deployment's driver waits for its last placement.
const PLACE_FINISH_MAX: Duration = Duration::from_secs(60);

/// Put the app's scalable target where each new value says (`Deployment::
/// scaling_placement`), one at a time, the latest value winning; ends when the driver
/// drops the sender.
async fn place_scaling<C: Cloud + 'static>(
    runner: Runner<C>,
    id: bluegreen_core::DeploymentId,
    mut rx: watch::Receiver<Option<CommandKind>>,
) {
    // Bounded by the driver: it drops the sender when it ends.
    while rx.changed().await.is_ok() {
        let Some(kind) = rx.borrow_and_update().clone() else {
            continue;
        };
        let step = bluegreen_core::CommandId::new(&id, "place-scaling");
        // Never after this replica lost its lease: the app's new holder places it.
        let tried = best_effort(
            &runner,
            step,
            kind,
            PLACE_ATTEMPTS_MAX,
            PLACE_ATTEMPT_TIMEOUT,
            true,
        );
        match tried.await {
            Some(Ok(CommandResult::ScalingPlaced { moved })) => {
                if moved {
                    metrics::counter!("bluegreen_scaling_moves_total").increment(1);
                }
            }
            Some(Ok(other)) => {
                tracing::warn!(?other, "placing the scalable target: unexpected answer");
            }
            Some(Err(why)) => {
                tracing::warn!(error = %why, "could not move the app's scalable target to the live slot");
                metrics::counter!("bluegreen_scaling_move_errors_total").increment(1);
            }
            None => return,
        }
    }
}

/// A background task aborted when its holder is dropped (a driver that ends fenced or
/// detached must not keep placing: the app's new holder does), or awaited on purpose.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    fn new(handle: tokio::task::JoinHandle<()>) -> AbortOnDrop {
        AbortOnDrop(Some(handle))
    }

    async fn finish(mut self, within: Duration) {
        if let Some(h) = self.0.take() {
            let abort = h.abort_handle();
            if tokio::time::timeout(within, h).await.is_err() {
                abort.abort();
                tracing::warn!("the last placement of the scalable target did not finish in time");
            }
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Attempts and per-attempt bound for the outcome's tags (informational: a failure is
/// logged, never retried further, never changes the outcome).
const TAG_ATTEMPTS_MAX: u32 = 3;
const TAG_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Write which slot is live on the slots' target groups (`Deployment::outcome_tags`).
async fn tag_outcome<C: Cloud + 'static>(runner: &Runner<C>, d: &Deployment) {
    let Some(kind) = d.outcome_tags() else { return };
    let step = bluegreen_core::CommandId::new(d.id(), "tag-slots");
    let tried = best_effort(
        runner,
        step,
        kind,
        TAG_ATTEMPTS_MAX,
        TAG_ATTEMPT_TIMEOUT,
        false,
    );
    if let Some(Err(why)) = tried.await {
        tracing::warn!(error = %why, "could not tag the slots with the outcome (the listener is the truth)");
    }
}

/// Send one of the runner's informational commands (the machine never issues them):
/// up to `attempts` tries of `timeout` each, 0.5 s × attempt apart. `Some(Err)`: the
/// last try's failure; `None`: not sent further because this replica's lease lapsed
/// (`check_lease`).
async fn best_effort<C: Cloud + 'static>(
    runner: &Runner<C>,
    id: bluegreen_core::CommandId,
    kind: CommandKind,
    attempts: u32,
    timeout: Duration,
    check_lease: bool,
) -> Option<Result<CommandResult, String>> {
    let cloud = &runner.inner().cloud;
    let mut failure = String::new();
    for attempt in 1..=attempts {
        if check_lease && !runner.inner().standing.is_valid() {
            return None;
        }
        let command = Command {
            id: id.clone(),
            attempt,
            kind: kind.clone(),
        };
        match tokio::time::timeout(timeout, cloud.execute(&command)).await {
            Ok(Ok(result)) => return Some(Ok(result)),
            Ok(Err(e)) => failure = e.to_string(),
            Err(_) => failure = format!("no answer within {} s", timeout.as_secs()),
        }
        tracing::debug!(command = %command.id, attempt, error = %failure, "retrying");
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Some(Err(failure))
}

fn dispatch<C: Cloud + 'static>(
    runner: &Runner<C>,
    flights: &mut JoinSet<Flight>,
    command: Arc<Command>,
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
    let role = bluegreen_core::budget::Role::of_phase(d.phase_name());
    let gate = runner.clone();
    // The budget holds a command at most half the machine's wait for its answer: one
    // held longer is answered unsent (never sent late, after the machine may have given
    // up on it and moved on — a late write could undo a rollback).
    let hold = inner
        .clock
        .until(d.updated_at().plus_ms(d.spec().timeouts.command_ms / 2));
    flights.spawn(async move {
        // The budget first: a command waiting for it holds no command slot.
        if let Some(b) = gate.inner().budget.as_ref()
            && tokio::time::timeout(hold, b.acquire(&command.kind, role))
                .await
                .is_err()
        {
            metrics::counter!("bluegreen_api_budget_refused_total", "role" => role.name())
                .increment(1);
            let error = CommandError::throttled(
                "BudgetExhausted",
                format!(
                    "not sent: the account's API budget held it for {} ms",
                    hold.as_millis()
                ),
            );
            return (command, Err(error));
        }
        let _permit = permits
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // The local lease check again, right before the call: a command that waited
        // for the budget (or for a slot) while this replica was frozen past its lease
        // must not go out after another replica took the app over.
        if !gate.inner().standing.is_valid() {
            let error = CommandError::retryable(
                "LeaseLapsed",
                "not sent: this replica's lease lapsed while the command waited to go out",
            );
            return (command, Err(error));
        }
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

async fn persist<C: Cloud + 'static>(
    runner: &Runner<C>,
    turn: std::sync::Arc<Turn>,
    fence: &Fence,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), PersistFailed> {
    let inner = runner.inner();
    let started = Instant::now();
    let mut delay = PERSIST_DELAY_FIRST;
    let mut attempt = 0u32;
    // Bounded by `store_retry_max` (and the stop signal): a store outage pauses the
    // deployment (nothing is sent meanwhile) instead of dropping it.
    loop {
        attempt += 1;
        match inner.store.persist(turn.clone(), Some(fence.clone())).await {
            Ok(()) => {
                if attempt > 1 {
                    tracing::info!(attempt, "the store answers again; the deployment goes on");
                }
                return Ok(());
            }
            Err(StoreError::Fenced { app, epoch }) => {
                metrics::counter!("bluegreen_fenced_writes_total").increment(1);
                tracing::warn!(%app, epoch, "write refused: another replica now drives this app; this one stops driving it");
                return Err(PersistFailed::Fenced);
            }
            Err(e) if started.elapsed() < inner.limits.store_retry_max => {
                metrics::counter!("bluegreen_store_retries_total").increment(1);
                tracing::warn!(error = %e, attempt, "persisting a turn failed; retrying");
                tokio::select! {
                    _ = stop.changed() => return Err(PersistFailed::GaveUp),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(PERSIST_DELAY_MAX);
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, "persisting a turn kept failing; the deployment waits for the store and is resumed once it answers");
                return Err(PersistFailed::GaveUp);
            }
        }
    }
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
        Notice::AlarmEvent {
            name,
            state,
            rolled_back,
            ignored,
            ..
        } => {
            if *rolled_back {
                tracing::warn!(alarm = %name, ?state, "alarm event: rolling back now")
            } else {
                tracing::info!(alarm = %name, ?state, ignored = ignored.as_deref().unwrap_or(""), "alarm event ignored")
            }
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
