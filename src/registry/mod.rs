//! Registry operations over the distribution API, split as go-containerregistry does:
//! [`reference`] (names), [`client`] (raw remote operations), [`auth`] and [`retry`]
//! (how requests are sent), and [`promote`] (all-or-nothing retag of a whole stack).

pub mod auth;
pub mod client;
pub mod http;
pub mod promote;
pub mod reference;
pub mod retry;

pub use client::{
    exists_many, ClientOptions, Descriptor, ExistsResult, Manifest, RegistryClient, RegistryError,
    RetagReport,
};
pub use reference::ImageRef;
