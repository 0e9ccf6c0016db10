//! Signatures of image digests that a real `cosign verify --key` accepts: keys in
//! cosign's own format or PEM ([`key`]), stored as cosign's `.sig` tags ([`cosign`]).
//! Keyless signing (Fulcio, Rekor) is left to cosign itself in CI (docs/github-actions.md).

pub mod cosign;
pub mod key;

pub use cosign::Verdict;
pub use key::{KeyError, Signer, Verifier};
