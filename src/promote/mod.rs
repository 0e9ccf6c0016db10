//! Moving tags to images that are already in the registry, without pulling them:
//! - [`stack`]: `stackctl tag`, which images of a stack go to which stable tags, and the
//!   files it leaves (`IMAGES_*`, the wiki);
//! - [`transaction`]: the tag moves of one promotion, all or nothing as far as a registry
//!   without transactions allows, read back before they are reported;
//! - [`order`]: which of two promotions racing for the same targets is newer;
//! - [`lineage`]: the parent each image records, checked so that a promoted stack fits
//!   together;
//! - [`assemble`]: the per-platform images of split builds put together in one index each,
//!   then tagged.

pub mod assemble;
pub mod evidence;
pub mod lineage;
pub mod order;
pub mod stack;
pub mod transaction;
