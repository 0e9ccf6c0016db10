//! PLACEHOLDER: replaced by the inv branch.
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Apt,
    Pip,
    Conda,
    R,
}
impl std::fmt::Display for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Manager::Apt => "apt",
            Manager::Pip => "pip",
            Manager::Conda => "conda",
            Manager::R => "r",
        })
    }
}
impl std::str::FromStr for Manager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "apt" => Manager::Apt,
            "pip" => Manager::Pip,
            "conda" => Manager::Conda,
            "r" => Manager::R,
            _ => return Err(s.into()),
        })
    }
}
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    pub manager: Manager,
    pub name: String,
    pub version: String,
}
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub managers: Vec<Manager>,
    pub packages: Vec<Package>,
}
pub fn script(_m: &[Manager]) -> String {
    String::new()
}
pub fn parse(_s: &str) -> anyhow::Result<Inventory> {
    Ok(Inventory::default())
}
pub fn from_spdx(_d: &serde_json::Value) -> Inventory {
    Inventory::default()
}
