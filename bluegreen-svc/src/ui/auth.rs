//! The status page's session: a login form trades the API token for a signed cookie, and
//! every form that changes something carries a CSRF token derived from that cookie.
//!
//! Both are stateless HMACs keyed from the API token's digest, so nothing is stored, a
//! restart keeps sessions valid, and rotating `BLUEGREEN_API_TOKEN` ends every session.
//! The cookie is `HttpOnly` (scripts cannot read it) and `SameSite=Strict` (no other site
//! can make the browser send it); the CSRF token is a second line of defence for the
//! writes.

use axum::http::{HeaderMap, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "bluegreen_session";
/// How long a session lasts after login.
pub const SESSION_SECS: u64 = 12 * 3600;
/// Longest cookie value looked at (a real one is ~80 characters).
const COOKIE_CHARS_MAX: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// The page's signing key, derived from the API token's digest.
#[derive(Clone)]
pub struct Keys([u8; 32]);

impl Keys {
    pub fn new(token_digest: &[u8; 32]) -> Keys {
        Keys(mac(token_digest, b"bluegreen ui session key v1"))
    }

    /// A session valid until `now_secs + SESSION_SECS`: `<expiry>.<hex mac>`.
    pub fn issue(&self, now_secs: u64) -> String {
        let expiry = now_secs.saturating_add(SESSION_SECS);
        let tag = mac(&self.0, format!("session:{expiry}").as_bytes());
        format!("{expiry}.{}", hex::encode(tag))
    }

    /// Is `value` a session this key issued that has not expired at `now_secs`?
    pub fn valid(&self, value: &str, now_secs: u64) -> bool {
        let Some((expiry, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(expiry), Ok(tag)) = (expiry.parse::<u64>(), hex::decode(tag)) else {
            return false;
        };
        let expected = mac(&self.0, format!("session:{expiry}").as_bytes());
        bool::from(expected.as_slice().ct_eq(&tag)) && now_secs < expiry
    }

    /// The CSRF token that goes with a session.
    pub fn csrf(&self, session: &str) -> String {
        hex::encode(&mac(&self.0, format!("csrf:{session}").as_bytes())[..16])
    }

    /// Does `candidate` match the session's CSRF token? Constant-time.
    pub fn csrf_ok(&self, session: &str, candidate: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(candidate.as_bytes()))
    }
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(message);
    m.finalize().into_bytes().into()
}

/// The session cookie's value in a request, if it carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= COOKIE_CHARS_MAX)
}

/// `Set-Cookie` for a new session (no `Secure`: the service may answer plain HTTP on
/// loopback; behind TLS the proxy should add it).
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}")
}

/// `Set-Cookie` that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Seconds since the Unix epoch from the wall clock. Sessions are an HTTP concern, not a
/// deployment's: they use real time even when the simulated cloud runs faster.
pub fn wall_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_key() {
        let k = Keys::new(&[7; 32]);
        let s = k.issue(1000);
        assert!(k.valid(&s, 1000));
        assert!(k.valid(&s, 1000 + SESSION_SECS - 1));
        assert!(!k.valid(&s, 1000 + SESSION_SECS));
        assert!(!Keys::new(&[8; 32]).valid(&s, 1000), "another token's key");
        let (_, tag) = s.split_once('.').unwrap();
        let forged = format!("{}.{tag}", 1000 + 10 * SESSION_SECS);
        assert!(!k.valid(&forged, 1000), "a longer expiry breaks the mac");
        assert!(!k.valid("garbage", 1000));
        assert!(!k.valid("1.zz", 0));
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let k = Keys::new(&[7; 32]);
        let (a, b) = (k.issue(1), k.issue(2));
        assert!(k.csrf_ok(&a, &k.csrf(&a)));
        assert!(!k.csrf_ok(&a, &k.csrf(&b)));
        assert!(!k.csrf_ok(&a, ""));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=1; {COOKIE}=123.abc; b=2").parse().unwrap(),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("123.abc"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
        let c = set_cookie("v");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
}
