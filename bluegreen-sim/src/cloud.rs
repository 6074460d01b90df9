//! [`SimCloud`]: the simulated world behind core's [`Cloud`] port, so the service's real
//! runner can run on it (the embedded default) and be tested against it.

use std::sync::{Arc, Mutex, MutexGuard};

use bluegreen_core::{Cloud, Command, CommandError, CommandResult, Timestamp};

use crate::world::World;

/// The clock a `SimCloud` reads before every command (the service passes its own; tests
/// pass a manual one).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A shared world plus a clock. Cloning shares the world. Each command first advances
/// the world to `clock()`, then is answered at once (no latency, no injected faults:
/// the world's own dynamics — tasks starting, health checks, draining, alarms,
/// throttling — are all there).
#[derive(Clone)]
pub struct SimCloud {
    world: Arc<Mutex<World>>,
    clock: Clock,
}

impl SimCloud {
    pub fn new(world: World, clock: Clock) -> Self {
        SimCloud {
            world: Arc::new(Mutex::new(world)),
            clock,
        }
    }

    /// Look at the world (advanced to the clock first): listener weights, tasks per
    /// target group, calls made.
    pub fn with_world<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        let mut w = self.lock();
        let now = (self.clock)();
        w.advance_to(now, &mut ());
        f(&w)
    }

    /// Change the world (advanced to the clock first): fix an image's quality, force an
    /// alarm, flap a target group, set a hook's behaviour.
    pub fn with_world_mut<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.lock();
        let now = (self.clock)();
        w.advance_to(now, &mut ());
        f(&mut w)
    }

    /// Answer one command synchronously (what `execute` does without the future).
    pub fn execute_now(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let now = (self.clock)();
        let mut w = self.lock();
        w.advance_to(now, &mut ());
        w.execute(command)
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves a world mid-change; later callers still
        // get it (the world's own invariants are asserted where they matter).
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud").finish_non_exhaustive()
    }
}

impl Cloud for SimCloud {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        self.execute_now(command)
    }
}
