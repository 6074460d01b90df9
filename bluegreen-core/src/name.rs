//! [`Name`]: shared, immutable text for the names a deployment carries everywhere
//! (cluster, services, target groups, listener and task-set ARNs, alarms, images).
//!
//! The machine puts the same handful of names into every command it issues — a canary
//! makes a hundred observations, each naming the cluster, a service or a target group —
//! and the simulator's world answers with the same names. As owned `String`s each of those
//! was a malloc, a copy and a free; a `Name` is an `Arc<str>`, so cloning one is a
//! reference-count increment. It reads like a `&str` (`Deref`), compares with `str` and
//! `String`, and serialises as a plain JSON string, so every journal, API body and config
//! file keeps its exact form.

use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;
use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Shared, immutable text: cheap to clone, read as a `&str`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(Arc<str>);

/// Equal names are usually the same allocation (cloned from one spec), so equality and
/// order look at the pointer before the bytes: lookups by name in the machine's and the
/// world's maps mostly skip the `memcmp`.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Name {}

/// Hashes the text, as `str` does (so `Borrow<str>` lookups in hash maps agree).
impl core::hash::Hash for Name {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> core::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return core::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl Name {
    pub fn new(text: impl Into<Name>) -> Self {
        text.into()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Name {
    fn default() -> Self {
        Name(Arc::from(""))
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Prints like the `String` it replaced (quoted), so `{:?}` output is unchanged.
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Arc::from(s))
    }
}

impl From<&mut str> for Name {
    fn from(s: &mut str) -> Self {
        Name(Arc::from(&*s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(Arc::from(s))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(Arc::from(s.as_str()))
    }
}

impl From<Box<str>> for Name {
    fn from(s: Box<str>) -> Self {
        Name(Arc::from(s))
    }
}

impl From<Cow<'_, str>> for Name {
    fn from(s: Cow<'_, str>) -> Self {
        Name(Arc::from(s.as_ref()))
    }
}

impl From<&Name> for Name {
    fn from(s: &Name) -> Self {
        s.clone()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0.as_ref().to_owned()
    }
}

impl From<&Name> for String {
    fn from(n: &Name) -> Self {
        n.0.as_ref().to_owned()
    }
}

/// The text of a name and a `&str` are usually one allocation too (the `&str` read
/// out of a `Name` and handed down): same address and length is equal without a
/// `memcmp`.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        same_text(&self.0, other)
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        same_text(&self.0, other)
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        same_text(self, &other.0)
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        same_text(self, &other.0)
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == &*other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_serialises_as_the_plain_string_it_replaced() {
        let n = Name::from("web-blue");
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""web-blue""#);
        assert_eq!(serde_json::from_str::<Name>(r#""web-blue""#).unwrap(), n);
        assert_eq!(format!("{n:?}"), format!("{:?}", "web-blue"));
        assert_eq!(n.to_string(), "web-blue");
    }

    #[test]
    fn clones_share_one_allocation() {
        let a = Name::from("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/b/1");
        let b = a.clone();
        assert!(core::ptr::eq(a.as_str(), b.as_str()));
    }

    /// The address shortcut never makes different texts equal: a slice of a name's own
    /// text (same address, shorter) is not the name, and a copy elsewhere still is.
    #[test]
    fn a_name_equals_a_str_exactly_when_the_text_is_the_same() {
        let n = Name::from("web-blue");
        let prefix: &str = &n.as_str()[..3];
        assert!(n != prefix);
        assert!(prefix != n);
        assert!(n != *prefix);
        assert!(*prefix != n);
        let whole: &str = n.as_str();
        assert!(n == whole);
        assert!(whole == n);
        let copy = String::from("web-blue");
        assert!(n == copy.as_str());
        assert!(copy.as_str() == n);
        assert!(n != "web-bluE");
        assert!("web-bluE" != n);
    }

    // Owned values on purpose: each `PartialEq` impl (`Name`/`str`/`&str`/`String`, both
    // ways) is exercised, which is what clippy's `cmp_owned` would optimise away.
    #[allow(clippy::cmp_owned)]
    #[test]
    fn a_name_compares_and_orders_like_its_text() {
        let a = Name::from("a");
        let b = Name::from("b");
        // Every direction of every comparison, equal and unequal.
        assert!(a == Name::from("a") && a != b);
        assert!(a == *"a" && a != *"b");
        assert!(a == "a" && a != "b");
        assert!(a == String::from("a") && a != String::from("b"));
        assert!(*"a" == a && *"b" != a);
        assert!("a" == a && "b" != a);
        assert!(String::from("a") == a && String::from("b") != a);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(a.cmp(&a.clone()), core::cmp::Ordering::Equal);
        assert_eq!(a.partial_cmp(&b), Some(core::cmp::Ordering::Less));
        let mut sorted = vec![Name::from("c"), b.clone(), a.clone()];
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c"]);
        // Hash agrees with `str` (the `Borrow<str>` contract): a set of names is
        // searched by text.
        let set: std::collections::HashSet<Name> = [a.clone(), b.clone()].into();
        assert!(set.contains("a") && set.contains("b") && !set.contains("c"));
        assert_eq!(String::from(&a), "a");
        assert_eq!(String::from(a.clone()), "a");
        assert_eq!(Name::default(), "");
        assert_eq!(a.len(), 1);
        let as_ref: &str = a.as_ref();
        assert_eq!(as_ref, "a");
    }

    #[test]
    fn every_conversion_into_a_name_keeps_the_text() {
        let text = "arn:aws:ecs:us-east-1:123456789012:service/prod/web-a";
        let mut owned = String::from(text);
        let from_mut: Name = owned.as_mut_str().into();
        let all = [
            Name::from(text),
            from_mut,
            Name::from(String::from(text)),
            Name::from(&String::from(text)),
            Name::from(Box::<str>::from(text)),
            Name::from(Cow::Borrowed(text)),
            Name::from(Cow::<str>::Owned(text.to_string())),
            Name::from(&Name::from(text)),
            Name::new(text),
        ];
        for (i, n) in all.iter().enumerate() {
            assert_eq!(n.as_str(), text, "conversion {i}");
        }
    }
}
