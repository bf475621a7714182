//! Gatehouse API tokens: `gh_` followed by 43 base64url characters (256
//! random bits). The store keeps only the SHA-256 of a token.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

pub const TOKEN_PREFIX: &str = "gh_";

/// Makes a new random token. The caller shows it once and stores its hash.
pub fn generate_token() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Secret::new(format!("{TOKEN_PREFIX}{body}"))
}

/// The lookup key stored for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a bearer value has the shape of a Gatehouse API token (as opposed to a JWT).
pub fn looks_like_api_token(value: &str) -> bool {
    value.len() == TOKEN_PREFIX.len() + 43
        && value.starts_with(TOKEN_PREFIX)
        && value[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_recognisable() {
        let a = generate_token();
        let b = generate_token();
        assert!(!a.ct_eq(&b));
        assert!(looks_like_api_token(a.expose()));
        assert!(!looks_like_api_token("gh_short"));
        assert!(!looks_like_api_token("eyJhbGciOiJSUzI1NiJ9.e30.sig"));
        assert_eq!(token_hash(a.expose()).len(), 64);
        assert_ne!(token_hash(a.expose()), token_hash(b.expose()));
    }
}
