//! AWS requests: which service and action a request is, the caller's SigV4
//! signature checked, and the request re-signed for the upstream.
//!
//! Callers use the ordinary AWS SDKs and CLI with `--endpoint-url` pointed
//! at Gatehouse, `AWS_ACCESS_KEY_ID` set to the connection name and both
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` set to their Gatehouse
//! token. The gateway reads the token from `X-Amz-Security-Token`,
//! authenticates it, then [`verify`]s the signature with the token as the
//! secret key (proof that the holder signed this exact request), decides the
//! request by [`action`], and [`resign`]s it for the upstream with the
//! connection's own key. The caller's signature and token are never
//! forwarded ([`forwardable`]).
//!
//! Order of use: [`authorization`] (refuses presigned URLs, parses the
//! header), [`security_token`], authenticate the token and check the
//! connection named by `AuthHeader::access_key`, [`verify`], [`action`] with
//! the signed `AuthHeader::service`, decide, [`forwardable`] + [`resign`]
//! with the same service. Errors answer with [`error_body`].

mod action;
mod auth;
mod canonical;
mod error_body;

pub use action::{action, full_action, iam_permissions, is_read_action};
pub use auth::{
    ALGORITHM, AuthHeader, AwsAuthError, CanonicalParts, Inbound, MAX_AUTHORIZATION,
    MAX_SIGNED_HEADERS, MAX_SKEW_MS, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD,
    authorization, canonical_request, forwardable, parse_authorization, refuse_presigned, resign,
    security_token, signature, verify,
};
pub use canonical::{canonical_query, canonical_uri, query_pairs};
pub use error_body::{error_body, xml_escape};
