//! Drive a deployment through the core machine against a real [`Cloud`], in virtual
//! time: commands go over the wire one by one; when the machine only waits, the clock
//! jumps to its wake time (so zero-wait specs take exactly their AWS calls' time).

use std::time::{SystemTime, UNIX_EPOCH};

use bluegreen_core::{
    Cloud, Command, CommandError, CommandResult, Deployment, DeploymentId, DeploymentSpec, Input,
    Notice, Output, PhaseName, SpecDraft, Timestamp,
};

/// Bound on machine turns per deployment (a zero-wait deployment takes a few dozen).
pub const TURNS_MAX: u32 = 2_000;

/// One executed command and what it cost.
#[derive(Debug)]
pub struct Executed {
    pub command: Command,
    /// AWS calls the adapter made for it.
    pub calls: u64,
    pub result: Result<CommandResult, CommandError>,
}

pub struct Driver {
    pub deployment: Deployment,
    pub now: Timestamp,
    pub executed: Vec<Executed>,
    pub transitions: Vec<String>,
    inbox: Vec<Input>,
}

pub fn wall_clock() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

impl Driver {
    pub fn new(id: &str, draft: SpecDraft) -> Driver {
        let spec = DeploymentSpec::new(draft).expect("a valid spec");
        let now = wall_clock();
        Driver {
            deployment: Deployment::new(DeploymentId::new(id).expect("a valid id"), spec, now),
            now,
            executed: Vec::new(),
            transitions: Vec::new(),
            inbox: vec![Input::Wake],
        }
    }

    pub fn phase(&self) -> PhaseName {
        self.deployment.phase_name()
    }

    /// One turn: hand in what arrived, drain the outputs, execute the commands (or jump
    /// to the wake time). `false` once there is nothing left to do.
    pub async fn turn<C: Cloud>(&mut self, cloud: &C, calls: impl Fn() -> u64) -> bool {
        for input in self.inbox.drain(..) {
            let _ = self.deployment.handle(self.now, input);
        }
        let mut commands = Vec::new();
        let wake_at = loop {
            match self.deployment.poll(self.now) {
                Output::Command(c) => commands.push(c),
                Output::Notice(Notice::Transition(t)) => self.transitions.push(format!(
                    "{} → {}: {}",
                    t.from.as_str(),
                    t.to.as_str(),
                    t.reason
                )),
                Output::Notice(_) => {}
                Output::Idle { wake_at } => break wake_at,
            }
        };
        if commands.is_empty() {
            return match wake_at {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.inbox.push(Input::Wake);
                    true
                }
                None => false,
            };
        }
        for command in commands {
            let before = calls();
            let result = cloud.execute(&command).await;
            let made = calls() - before;
            self.inbox.push(Input::CommandDone {
                id: command.id.clone(),
                result: result.clone(),
            });
            self.executed.push(Executed {
                command: std::sync::Arc::unwrap_or_clone(command),
                calls: made,
                result,
            });
        }
        true
    }

    /// Turns until the machine has nothing left to do (bounded by [`TURNS_MAX`]).
    pub async fn run<C: Cloud>(&mut self, cloud: &C, calls: impl Fn() -> u64) {
        for _ in 0..TURNS_MAX {
            if !self.turn(cloud, &calls).await {
                return;
            }
        }
        panic!(
            "the deployment did not settle in {TURNS_MAX} turns: {}",
            self.report()
        );
    }

    /// AWS calls made in all.
    pub fn calls(&self) -> u64 {
        self.executed.iter().map(|e| e.calls).sum()
    }

    /// Transitions and failed commands, for assertion messages.
    pub fn report(&self) -> String {
        let failures: Vec<String> = self
            .executed
            .iter()
            .filter_map(|e| {
                e.result
                    .as_ref()
                    .err()
                    .map(|err| format!("{}: {err}", e.command.id))
            })
            .collect();
        format!(
            "phase {:?}\ntransitions:\n  {}\nfailed commands:\n  {}",
            self.phase(),
            self.transitions.join("\n  "),
            failures.join("\n  ")
        )
    }
}
