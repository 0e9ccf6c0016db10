//! What changed between two images: their package inventories, compared.
pub mod inventory;
