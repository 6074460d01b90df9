//! The port an executor implements: the AWS adapter (bluegreen-svc) and the simulated
//! world (bluegreen-sim) both do, and the service's runner is generic over it.

use core::future::Future;

use crate::command::{Command, CommandError, CommandResult};

/// Performs one command. Implementations do not retry beyond one request's own retry
/// (the machine owns the retry schedule) and classify failures as
/// [`crate::ErrorClass`] `Retryable`, `Fatal` or `Ambiguous`.
///
/// Implement it with `async fn execute(&self, command: &Command) -> …` in your `impl`.
pub trait Cloud: Send + Sync {
    fn execute(
        &self,
        command: &Command,
    ) -> impl Future<Output = Result<CommandResult, CommandError>> + Send;
}

impl<C: Cloud> Cloud for std::sync::Arc<C> {
    fn execute(
        &self,
        command: &Command,
    ) -> impl Future<Output = Result<CommandResult, CommandError>> + Send {
        (**self).execute(command)
    }
}
