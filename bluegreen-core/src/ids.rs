//! Identifiers and the one stable hash the crate uses.
//!
//! Command ids are derived from the deployment id and the logical step, never from a counter
//! shared between deployments or from randomness, so that re-running a step after a crash
//! presents AWS with the same idempotency token.

use core::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A deployment's identity, chosen by whoever creates the deployment (the service uses
/// `<app>-<yyyymmddThhmmss>-<n>`). Also the seed of every jitter the deployment draws.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(String);

/// Longest deployment id accepted (keeps command ids and AWS external ids bounded).
pub const DEPLOYMENT_ID_LEN_MAX: usize = 128;

impl DeploymentId {
    /// Validates that the id is 1..=128 characters of `[A-Za-z0-9._-]`: the id appears in
    /// URLs, journal lines and AWS external ids, so nothing needing escaping is allowed.
    pub fn new(id: impl Into<String>) -> Result<Self, crate::spec::SpecError> {
        let id = id.into();
        if id.is_empty() || id.len() > DEPLOYMENT_ID_LEN_MAX {
            return Err(crate::spec::SpecError::new(
                "id",
                format!("must be 1 to {DEPLOYMENT_ID_LEN_MAX} characters"),
            ));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(crate::spec::SpecError::new(
                "id",
                format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"),
            ));
        }
        Ok(DeploymentId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The deployment's seed: every jittered delay is drawn from it, so two runs of the
    /// same deployment id make the same decisions at the same virtual times.
    pub fn seed(&self) -> u64 {
        stable_hash64(self.0.as_bytes())
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one logical step of one deployment: `<deployment>/<step>`, e.g.
/// `web-20261122T030405-1/ensure-green` or `…/observe-17`. Retries of the same step reuse
/// the id; results are matched to in-flight commands by it.
///
/// Shared, immutable text: a command id is cloned into every retry, resolution and
/// journal line, so cloning it must not allocate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(Arc<str>);

impl CommandId {
    pub fn new(deployment: &DeploymentId, step: &str) -> Self {
        CommandId(joined(&[&deployment.0, "/", step]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<deployment>/<prefix><n><suffix>` without going through the formatter (the
    /// observation batches make several of these per poll interval).
    pub fn numbered(deployment: &DeploymentId, prefix: &str, n: u64, suffix: &str) -> Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let digits = core::str::from_utf8(&digits[i..]).expect("ascii digits");
        CommandId(joined(&[&deployment.0, "/", prefix, digits, suffix]))
    }

    /// An id for a command serving this one (the observation resolving an ambiguous
    /// write): `<id>~<suffix>`.
    pub fn derived(&self, suffix: &str) -> CommandId {
        CommandId(joined(&[&self.0, "~", suffix]))
    }

    /// A 32-character hex token for AWS `clientToken` parameters (ECS allows at most 36
    /// characters, and our ids can be longer): a stable 128-bit hash of the id.
    pub fn client_token(&self) -> String {
        let hi = stable_hash64(self.0.as_bytes());
        let lo = stable_hash64_with(self.0.as_bytes(), 0x9e37_79b9_7f4a_7c15);
        format!("{hi:016x}{lo:016x}")
    }
}

/// `parts` as one shared string, allocated once (the `Arc`'s own block): the parts are
/// gathered on the stack first, since ids are short (a deployment id is at most
/// [`DEPLOYMENT_ID_LEN_MAX`] characters). Going through a `String` would allocate twice.
fn joined(parts: &[&str]) -> Arc<str> {
    const STACK_MAX: usize = 256;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > STACK_MAX {
        return Arc::from(parts.concat());
    }
    let mut buf = [0u8; STACK_MAX];
    let mut n = 0;
    for p in parts {
        buf[n..n + p.len()].copy_from_slice(p.as_bytes());
        n += p.len();
    }
    Arc::from(core::str::from_utf8(&buf[..n]).expect("joined from whole strs"))
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit, finished with a SplitMix64 avalanche. Stable across builds, platforms
/// and Rust versions (unlike `std::hash`), which is what determinism needs.
pub fn stable_hash64(bytes: &[u8]) -> u64 {
    stable_hash64_with(bytes, 0)
}

/// [`stable_hash64`] with a salt, for deriving independent streams from one key.
pub fn stable_hash64_with(bytes: &[u8], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// SplitMix64's finaliser: spreads every input bit over the output.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_reject_characters_that_need_escaping() {
        assert!(DeploymentId::new("web-20261122T030405-1").is_ok());
        let err = DeploymentId::new("web/1").unwrap_err();
        assert_eq!(err.field, "id");
        assert!(DeploymentId::new("").is_err());
        assert!(DeploymentId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn numbered_ids_match_the_formatted_form() {
        let d = DeploymentId::new("web-1").unwrap();
        for n in [0, 7, 10, 12345, u64::MAX] {
            assert_eq!(
                CommandId::numbered(&d, "t", n, "-health"),
                CommandId::new(&d, &format!("t{n}-health"))
            );
        }
    }

    #[test]
    fn ids_longer_than_the_stack_buffer_are_joined_whole() {
        let d = DeploymentId::new("d".repeat(DEPLOYMENT_ID_LEN_MAX)).unwrap();
        let step = "s".repeat(200);
        let id = CommandId::new(&d, &step);
        assert_eq!(id.as_str(), format!("{}/{step}", d.as_str()));
        let derived = id.derived("resolve");
        assert_eq!(derived.as_str(), format!("{}/{step}~resolve", d.as_str()));
        assert_eq!(
            CommandId::numbered(&d, &step, 42, "-x").as_str(),
            format!("{}/{step}42-x", d.as_str())
        );
    }

    #[test]
    fn client_tokens_are_stable_32_hex_and_distinct_per_step() {
        let d = DeploymentId::new("web-1").unwrap();
        let a = CommandId::new(&d, "ensure-green");
        let b = CommandId::new(&d, "ensure-green");
        let c = CommandId::new(&d, "rollback-prod");
        assert_eq!(a.client_token(), b.client_token());
        assert_ne!(a.client_token(), c.client_token());
        assert_eq!(a.client_token().len(), 32);
        assert!(a.client_token().bytes().all(|b| b.is_ascii_hexdigit()));
        // Pinned: the token must never change between releases, or a resumed deployment
        // would present AWS with a new token and could create a second green.
        assert_eq!(a.client_token(), "ad545bde44415742ea0c1fd048a8d824");
    }
}
