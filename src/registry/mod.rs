//! Registry operations over the distribution API, split as go-containerregistry does:
//! [`reference`](mod@reference) (names); [`transport`], a stack of small layers every request goes
//! through (scheme, user agent, auth, retry, debug log, http); [`client`] (operation-sized
//! functions over it); [`copy`] (copy and retag); [`index`] (a multi-platform index put
//! together from images already in the repository). The all-or-nothing retag of a whole
//! stack is built on them in [`crate::promote::transaction`].

/// The OCI annotation (or, where BuildKit cannot annotate, the config label) naming the
/// image an image was built FROM, and the one with that image's manifest digest.
pub const BASE_NAME_KEY: &str = "org.opencontainers.image.base.name";
pub const BASE_DIGEST_KEY: &str = "org.opencontainers.image.base.digest";

pub mod attestation;
pub mod client;
pub mod copy;
pub mod index;
pub mod reference;
pub mod referrers;
pub mod transport;

pub use client::{
    exists_many, exists_within, CheckDeadline, ClientOptions, Descriptor, ExistsResult, Manifest,
    RegistryClient, RegistryError,
};
pub use copy::RetagReport;
pub use reference::ImageRef;
