//! Registry operations over the distribution API, split as go-containerregistry does:
//! [`reference`] (names); [`transport`], a stack of small layers every request goes
//! through ([`scheme`], [`useragent`], [`auth`], [`retry`], [`debuglog`], [`http`]);
//! [`client`] (operation-sized functions over it); [`copy`] (copy and retag);
//! [`tag_transaction`] (the all-or-nothing retag of a whole stack, read back); [`index`]
//! (a multi-platform index put together from images already in the repository).

pub mod client;
pub mod copy;
pub mod index;
pub mod reference;
pub mod transport;

pub use client::{
    exists_many, exists_within, CheckDeadline, ClientOptions, Descriptor, ExistsResult, Manifest,
    RegistryClient, RegistryError, RetagReport,
};
pub use reference::ImageRef;
