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
/// Immutable text, cheap to make and to clone: a command id is made for every command
/// (a monitor tick makes several) and cloned into every retry, resolution and journal
/// line. An id of up to [`COMMAND_ID_INLINE_MAX`] bytes — every id the machine makes
/// for a deployment id of up to ~25 characters — lives inline (no allocation to make,
/// clone or drop it); a longer one is shared text (`Arc<str>`, cloned without
/// allocating). Equality, order, hashing and serde all see only the text.
#[derive(Clone)]
pub struct CommandId(IdRepr);

/// Longest id kept inline; sized so that a `CommandId` is 40 bytes.
pub const COMMAND_ID_INLINE_MAX: usize = 38;

#[derive(Clone)]
enum IdRepr {
    Inline {
        len: u8,
        bytes: [u8; COMMAND_ID_INLINE_MAX],
    },
    Shared(Arc<str>),
}

impl CommandId {
    pub fn new(deployment: &DeploymentId, step: &str) -> Self {
        joined(&[&deployment.0, "/", step])
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            IdRepr::Inline { len, bytes } => core::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("inline ids are copied from whole strs"),
            IdRepr::Shared(text) => text,
        }
    }

    /// The id's text as bytes, without the UTF-8 check `as_str` makes of an inline id:
    /// what equality, order and hashing (and the simulator's trace) compare.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            IdRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IdRepr::Shared(text) => text.as_bytes(),
        }
    }

    /// `<deployment>/<prefix><n><suffix>` (e.g. `web-1/t17-health`), the digits written
    /// without formatting machinery: the monitor makes one of these per read.
    pub fn numbered(deployment: &DeploymentId, prefix: &str, n: u64, suffix: &str) -> Self {
        let width = n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let head = [deployment.0.as_str(), "/", prefix];
        let len = head.iter().map(|p| p.len()).sum::<usize>() + width + suffix.len();
        if len > COMMAND_ID_INLINE_MAX {
            return CommandId(IdRepr::Shared(Arc::from(format!(
                "{}/{prefix}{n}{suffix}",
                deployment.0
            ))));
        }
        // The digits last-to-first, without the formatter.
        inline_id(len, |bytes| {
            let mut at = copy_parts(bytes, &head);
            let mut v = n;
            for i in (at..at + width).rev() {
                bytes[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            at += width;
            bytes[at..at + suffix.len()].copy_from_slice(suffix.as_bytes());
        })
    }

    /// An id for a step derived from this one (`<id>~<suffix>`), e.g. the read that
    /// resolves whether a write took effect.
    pub fn derived(&self, suffix: &str) -> CommandId {
        joined(&[self.as_str(), "~", suffix])
    }

    /// A 32-hex-digit token for AWS `clientToken` parameters: stable for this id, so
    /// retries of the same step are idempotent at AWS.
    pub fn client_token(&self) -> String {
        let text = self.as_str().as_bytes();
        let hi = stable_hash64(text);
        let lo = stable_hash64_with(text, 0x9e37_79b9_7f4a_7c15);
        format!("{hi:016x}{lo:016x}")
    }
}

/// The parts, concatenated: inline when they fit, else shared text.
fn joined(parts: &[&str]) -> CommandId {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > COMMAND_ID_INLINE_MAX {
        return CommandId(IdRepr::Shared(Arc::from(parts.concat())));
    }
    inline_id(len, |bytes| {
        copy_parts(bytes, parts);
    })
}

/// An inline id of `len` bytes, written by `fill` in place: building the bytes in a
/// local array and moving it into the id made the CPU reload freshly stored bytes at
/// another width (a store-forwarding stall on every id made). Every byte past `len`
/// stays zero, which equality relies on.
#[inline]
fn inline_id(len: usize, fill: impl FnOnce(&mut [u8; COMMAND_ID_INLINE_MAX])) -> CommandId {
    debug_assert!(len <= COMMAND_ID_INLINE_MAX);
    let mut id = CommandId(IdRepr::Inline {
        len: len as u8,
        bytes: [0u8; COMMAND_ID_INLINE_MAX],
    });
    if let IdRepr::Inline { bytes, .. } = &mut id.0 {
        fill(bytes);
    }
    id
}

/// Copy `parts` one after another from the start of `bytes`; the length written.
#[inline]
fn copy_parts(bytes: &mut [u8], parts: &[&str]) -> usize {
    let mut at = 0;
    for p in parts {
        bytes[at..at + p.len()].copy_from_slice(p.as_bytes());
        at += p.len();
    }
    at
}

impl PartialEq for CommandId {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Bytes past `len` are always zero (every inline id starts zeroed), so the
            // whole fixed arrays compare equal exactly when the texts do — compared
            // inline, without a `memcmp` call (the machine matches every answer by id).
            (IdRepr::Inline { len: a, bytes: x }, IdRepr::Inline { len: b, bytes: y }) => {
                a == b && inline_eq(x, y)
            }
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for CommandId {}

/// Two inline id buffers, compared as five (overlapping) 8-byte words: branch-free and
/// without the `memcmp` call a 38-byte array comparison becomes.
#[inline]
fn inline_eq(x: &[u8; COMMAND_ID_INLINE_MAX], y: &[u8; COMMAND_ID_INLINE_MAX]) -> bool {
    const LAST: usize = COMMAND_ID_INLINE_MAX - 8;
    let word = |b: &[u8; COMMAND_ID_INLINE_MAX], at: usize| {
        u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    };
    let differ = (word(x, 0) ^ word(y, 0))
        | (word(x, 8) ^ word(y, 8))
        | (word(x, 16) ^ word(y, 16))
        | (word(x, 24) ^ word(y, 24))
        | (word(x, LAST) ^ word(y, LAST));
    differ == 0
}

impl PartialOrd for CommandId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CommandId {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        // Byte order is `str`'s order.
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl core::hash::Hash for CommandId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes: the bytes, then 0xff.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CommandId").field(&self.as_str()).finish()
    }
}

impl Serialize for CommandId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(joined(&[&text]))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

    /// Ids are equal exactly when their texts are: whatever the length (inline up to
    /// the limit, shared past it) and wherever one byte differs — first, last, or in
    /// the overlap of the word-wise comparison.
    #[test]
    fn ids_are_equal_exactly_when_their_texts_are() {
        for len in 0..=COMMAND_ID_INLINE_MAX + 2 {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let id = joined(&[&text]);
            assert_eq!(id, joined(&[&text]), "len {len}");
            assert_eq!(id.as_str(), text);
            for at in 0..len {
                let mut other = text.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).expect("ascii");
                assert_ne!(id, joined(&[&other]), "len {len}, differing at {at}");
            }
            let longer = format!("{text}a");
            assert_ne!(id, joined(&[&longer]), "len {len} vs one longer");
        }
    }

    /// The word-wise comparison must not let two differences cancel out: the same
    /// change at the same offset of two different words still makes the ids differ.
    #[test]
    fn equal_changes_in_two_words_do_not_cancel() {
        let text = "a".repeat(COMMAND_ID_INLINE_MAX);
        let id = joined(&[&text]);
        let starts = [0, 8, 16, 24, COMMAND_ID_INLINE_MAX - 8];
        // Offset 2 as well as 0: bytes 30 and 31 lie in two words, 32 in the last only.
        for offset in [0, 2] {
            for (i, &p) in starts.iter().enumerate() {
                for &q in &starts[i + 1..] {
                    let (p, q) = (p + offset, q + offset);
                    let mut other = text.clone().into_bytes();
                    other[p] = b'b';
                    other[q] = b'b';
                    let other = String::from_utf8(other).expect("ascii");
                    assert_ne!(id, joined(&[&other]), "changed at {p} and {q}");
                }
            }
        }
    }

    /// Ids up to the inline limit are inline however they are made (no allocation to
    /// make, clone or drop one), and one byte more is shared text.
    #[test]
    fn numbered_ids_are_inline_up_to_the_limit() {
        let d = DeploymentId::new("web-1").unwrap();
        // "web-1/" is 6 bytes, "t" 1, the number 2: the suffix fills the rest.
        let fill = COMMAND_ID_INLINE_MAX - 9;
        let at_limit = CommandId::numbered(&d, "t", 42, &"x".repeat(fill));
        assert_eq!(at_limit.as_str().len(), COMMAND_ID_INLINE_MAX);
        assert!(matches!(at_limit.0, IdRepr::Inline { .. }));
        let past = CommandId::numbered(&d, "t", 42, &"x".repeat(fill + 1));
        assert!(matches!(past.0, IdRepr::Shared(_)));
        assert_eq!(past.as_str(), format!("web-1/t42{}", "x".repeat(fill + 1)));
    }

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
    fn ids_at_the_inline_boundary_compare_hash_and_serialise_as_their_text() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |id: &CommandId| {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        let d = DeploymentId::new("web-1").unwrap();
        // "web-1/" is 6 bytes: steps of 32 and 33 bytes give ids of 38 (inline) and 39
        // (shared) bytes.
        let fits = CommandId::new(&d, &"a".repeat(COMMAND_ID_INLINE_MAX - 6));
        let spills = CommandId::new(&d, &"a".repeat(COMMAND_ID_INLINE_MAX - 5));
        assert!(matches!(fits.0, IdRepr::Inline { .. }));
        assert!(matches!(spills.0, IdRepr::Shared(_)));
        assert_eq!(fits.as_str().len(), COMMAND_ID_INLINE_MAX);
        assert_eq!(spills.as_str().len(), COMMAND_ID_INLINE_MAX + 1);
        // Order and equality are the text's, whatever the representation.
        assert!(fits < spills, "a prefix sorts first");
        assert_ne!(fits, spills);
        let mut ids = vec![spills.clone(), fits.clone()];
        ids.sort();
        assert_eq!(ids, [fits.clone(), spills.clone()]);
        // Equal text hashes equal, as the text itself does.
        let shared = CommandId(IdRepr::Shared(Arc::from(fits.as_str())));
        assert_eq!(shared, fits);
        assert_eq!(hash(&shared), hash(&fits));
        let mut h = DefaultHasher::new();
        fits.as_str().hash(&mut h);
        assert_eq!(hash(&fits), h.finish());
        // Serde sees a plain string, and reads it back to the same id either way.
        for id in [&fits, &spills] {
            let json = serde_json::to_string(id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            let back: CommandId = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, id);
            assert_eq!(format!("{back:?}"), format!("CommandId({:?})", id.as_str()));
        }
        assert_eq!(fits.derived("r").as_str(), format!("{}~r", fits.as_str()));
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
