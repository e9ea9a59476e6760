//! `NodeName`: a node id shared, not copied. Every received message names its source, and a
//! `String` per message would be an allocation per message; the connection holds the name
//! once and each message takes a reference-counted handle to it. Beside it, the names' limits
//! and the 64-bit node key that stands for an id in frame headers (the vocabulary config
//! validates and the wire carries).

use serde::Serialize;
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Longest fabric name (it travels in every hello).
pub const FABRIC_NAME_MAX_BYTES: usize = 1024;

/// The 64-bit key that stands for a node id in frame headers (FNV-1a of the UTF-8 id).
/// Configuration validation refuses two ids with the same key.
pub fn node_key(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.as_bytes() {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A node id, cheap to clone. Derefs to `str` and compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        NodeName(Arc::from(s))
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        NodeName(Arc::from(s))
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.0.to_string()
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for NodeName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<NodeName> for &str {
    fn eq(&self, other: &NodeName) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<NodeName> for String {
    fn eq(&self, other: &NodeName) -> bool {
        **self == *other.0
    }
}

#[cfg(test)]
mod tests {
    use super::NodeName;

    #[test]
    fn compares_and_prints_as_its_id() {
        let n = NodeName::from("gpu-01");
        let m = n.clone();
        assert_eq!(n, "gpu-01");
        assert_eq!(n, String::from("gpu-01"));
        assert!("gpu-01" == n);
        assert_eq!(n.to_string(), "gpu-01");
        assert_eq!(format!("{n:?}"), "\"gpu-01\"");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"gpu-01\"");
        assert_ne!(n, "gpu-02");
        assert_eq!(String::from(m), "gpu-01");
    }
}
