//! Building the AWS cloud for `[cloud] kind = "aws"`.

use bluegreen_core::{Cloud, Command, CommandError, CommandResult};

/// The AWS adapter as the service drives it.
pub type AwsKind = Unavailable;

/// Stands in until the AWS adapter (`crate::aws`) exposes `AwsCloud`; `build` refuses to
/// start with it, so it never executes anything.
pub struct Unavailable;

impl Cloud for Unavailable {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        Err(CommandError::fatal(
            "UnsupportedCommand",
            format!(
                "the AWS adapter is not part of this build ({})",
                command.kind.name()
            ),
        ))
    }
}

/// The AWS cloud from the standard chain (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn build() -> Result<AwsKind, String> {
    Err("cloud.kind = \"aws\": the AWS adapter is not part of this build yet".into())
}
