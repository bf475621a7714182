//! A string that must never be printed: passwords, tokens, key material.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Holds a secret value. `Debug` and `Display` print `[redacted]`, the
/// memory is zeroed on drop, and equality is constant-time. There is no
/// `Serialize` implementation on purpose: putting a secret on the wire must
/// be an explicit `expose()`.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The clear value. Call sites are the few places that must use it
    /// (encrypting, authenticating upstream) and are easy to audit by grep.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn equality_is_by_value() {
        assert!(Secret::new("a").ct_eq(&Secret::new("a")));
        assert!(!Secret::new("a").ct_eq(&Secret::new("b")));
        assert!(!Secret::new("a").ct_eq(&Secret::new("ab")));
    }
}
