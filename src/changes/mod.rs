//! What changed between two images: their package inventories (collected where the image
//! is, attached to it in the registry), their sizes and layers, and the size budget.

pub mod budget;
pub mod collect;
pub mod diff;
pub mod inventory;
pub mod read;
pub mod render;

pub use diff::{compare, Changes, ImageSide, PlatformImage};
