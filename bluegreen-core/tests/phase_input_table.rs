//! Every phase × every input it can get. Each cell is what the machine does with that
//! input in a representative state of that phase; the table is pinned (and copied into
//! docs/state-machine.md) so any change of behaviour shows up in review.

mod support;

use bluegreen_core::machine::{AlarmVerdict, IgnoredAlarm};
use bluegreen_core::*;
use support::*;

/// A representative state of each phase: the deployment at a round boundary with at least
/// one command in flight where the phase has any, plus the answer the world gave it.
fn states() -> Vec<(String, Deployment, Vec<Input>)> {
    let mut out = Vec::new();
    let mut capture = |label: &str, r: &Run| {
        out.push((label.to_string(), r.d.clone(), r.inbox.clone()));
    };
    let in_flight = |r: &Run| r.d.in_flight().next().is_some();
    for phase in [
        PhaseName::Preflight,
        PhaseName::CreateGreen,
        PhaseName::Deploy,
        PhaseName::HealthCheck,
        PhaseName::TestTraffic,
        PhaseName::Approval,
        PhaseName::Shift,
        PhaseName::Bake,
        PhaseName::DrainBlue,
    ] {
        let mut r = Run::new(full_spec(|_| {}));
        if phase == PhaseName::Preflight {
            r.round();
        } else {
            r.until(|r| {
                if r.d.phase_name() == PhaseName::Approval && phase != PhaseName::Approval {
                    return true;
                }
                r.d.phase_name() == phase && in_flight(r)
            });
            if r.d.phase_name() == PhaseName::Approval && phase != PhaseName::Approval {
                r.operator(OperatorRequest::Promote).unwrap();
                r.until(|r| r.d.phase_name() == phase && in_flight(r));
            }
        }
        assert_eq!(r.d.phase_name(), phase);
        capture(phase.as_str(), &r);
    }
    // paused (in health-check), rollback (abort during bake)
    let mut r = Run::new(full_spec(|_| {}));
    r.until(|r| r.d.phase_name() == PhaseName::HealthCheck);
    r.operator(OperatorRequest::Pause).unwrap();
    r.until(|r| in_flight(r));
    capture("paused", &r);
    let mut r = Run::new(full_spec(|_| {}));
    r.until(|r| r.d.phase_name() == PhaseName::Approval);
    r.operator(OperatorRequest::Promote).unwrap();
    r.until(|r| r.d.phase_name() == PhaseName::Bake);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Rollback);
    r.until(|r| r.d.in_flight().any(|c| c.kind.is_write()));
    capture("rollback", &r);
    // terminals
    let mut r = Run::new(spec(|_| {}));
    r.finish();
    capture("completed", &r);
    let mut r = Run::example();
    r.until(|r| r.d.phase_name() == PhaseName::Deploy);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.finish();
    capture("rolled-back", &r);
    let mut r = Run::example();
    r.w.missing_alarms.push("web-5xx".into());
    r.finish();
    capture("rejected", &r);
    let mut r = Run::example();
    r.until(|r| r.d.phase_name() == PhaseName::Deploy);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    for _ in 0..40 {
        r.w.fault(
            "set-listener-weights",
            Fault::Error(err(ErrorClass::Fatal, "AccessDenied")),
        );
    }
    r.finish();
    capture("failed", &r);
    out
}

/// What the machine did with `input`, in a few words.
fn effect(mut d: Deployment, input: Input) -> String {
    let now = d.updated_at();
    let before = d.phase_name();
    if let Err(refused) = d.handle(now, input) {
        assert_eq!(refused.phase, before);
        return "409".into();
    }
    let mut notices = Vec::new();
    let mut commands = Vec::new();
    for _ in 0..1000 {
        match d.poll(now) {
            Output::Command(c) => commands.push(c),
            Output::Notice(n) => notices.push(n),
            Output::Idle { .. } => break,
        }
    }
    let after = d.phase_name();
    if after != before {
        return format!("→ {after}");
    }
    if notices
        .iter()
        .any(|n| matches!(n, Notice::Resolving { .. }))
    {
        return "observe first".into();
    }
    if notices.iter().any(|n| matches!(n, Notice::Retrying { .. })) {
        return "retry later".into();
    }
    if !commands.is_empty() {
        return "next command".into();
    }
    if d.in_flight().next().is_some() || !d.is_terminal() {
        return "wait".into();
    }
    "ignored".into()
}

#[test]
fn phase_by_input_table() {
    let columns = [
        "result ok",
        "retryable",
        "ambiguous",
        "fatal",
        "stale result",
        "wake",
        "restarted",
        "promote",
        "abort",
        "pause",
        "resume",
        "alarm event",
    ];
    let mut table = String::new();
    table.push_str(&format!(
        "| phase (command in flight) | {} |\n",
        columns.join(" | ")
    ));
    table.push_str(&format!("|---|{}\n", "---|".repeat(columns.len())));
    for (label, d, answers) in states() {
        // Prefer a write in flight: it is where the error classes differ.
        let flight = d
            .in_flight()
            .find(|c| c.kind.is_write())
            .or_else(|| d.in_flight().next())
            .cloned();
        let id = flight.as_ref().map(|c| c.id.clone());
        let with_error = |class| {
            id.clone().map(|id| Input::CommandDone {
                id,
                result: Err(CommandError::new(class, "Injected", "table")),
            })
        };
        let inputs: Vec<Option<Input>> = vec![
            answers
                .into_iter()
                .find(|a| matches!(a, Input::CommandDone { id: aid, result: Ok(_) } if Some(aid) == id.as_ref())),
            with_error(ErrorClass::Retryable),
            with_error(ErrorClass::Ambiguous),
            with_error(ErrorClass::Fatal),
            Some(Input::CommandDone {
                id: CommandId::new(d.id(), "no-such-step"),
                result: Ok(CommandResult::Scaled),
            }),
            Some(Input::Wake),
            Some(Input::Restarted),
            Some(Input::Operator(OperatorRequest::Promote)),
            Some(Input::Operator(OperatorRequest::Abort { reason: None })),
            Some(Input::Operator(OperatorRequest::Pause)),
            Some(Input::Operator(OperatorRequest::Resume)),
        ];
        let mut cells: Vec<String> = inputs
            .into_iter()
            .map(|i| {
                i.map(|i| effect(d.clone(), i))
                    .unwrap_or_else(|| "—".into())
            })
            .collect();
        // An ALARM event for the spec's own alarm, as the CloudWatch webhook hands it in.
        let alarm = AlarmEvent {
            name: "web-5xx".into(),
            state: AlarmState::Alarm,
            reason: "table".into(),
            at: d.updated_at(),
        };
        cells.push(match d.alarm_verdict(&alarm) {
            AlarmVerdict::RollsBack => effect(d.clone(), Input::Alarm(alarm)),
            AlarmVerdict::Ignored(why) => match why {
                IgnoredAlarm::PhaseDoesNotWatch(_) => "ignored: not watching".into(),
                IgnoredAlarm::AlreadyRollingBack => "ignored: repeat".into(),
                IgnoredAlarm::Over => "ignored: over".into(),
                other => format!("ignored: {other}"),
            },
        });
        let what = flight.map(|c| c.kind.name()).unwrap_or("none");
        table.push_str(&format!("| {label} ({what}) | {} |\n", cells.join(" | ")));
    }
    insta::assert_snapshot!("phase_by_input", table);
}
