//! What a build compares against the image it replaces: the package managers whose
//! packages are listed (`packages:`), and the compressed size an image may have
//! (`size_budget:`). Both are read at the stack's top level and per image; an image's own
//! `packages:` replaces the stack's, its `size_budget:` overrides the stack's key by key.
//!
//! ```yaml
//! packages: [apt, pip]       # default: whichever of apt, pip, conda, r the image has
//! size_budget:
//!   max: 8GB                 # compressed, per platform
//!   growth: 500MB            # against the image it replaces
//!   on_exceed: warn          # default: fail (the image gets no tag)
//! ```

use serde_yaml::Value;

/// The package managers stackctl can read.
pub const MANAGERS: [&str; 4] = ["apt", "pip", "conda", "r"];

/// What an image over its budget gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    /// The image fails before its tag.
    #[default]
    Fail,
    /// A warning, and the image goes on.
    Warn,
}

/// One image's size budget: compressed bytes per platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SizeBudget {
    pub max: Option<u64>,
    /// Most the image may grow by against the image it replaces.
    pub growth: Option<u64>,
    pub on_exceed: OnExceed,
}

impl SizeBudget {
    pub fn any(&self) -> bool {
        self.max.is_some() || self.growth.is_some()
    }
}

/// A `size_budget:` as read, each key still optional so an image's can fall back to the
/// stack's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBudget {
    max: Option<u64>,
    growth: Option<u64>,
    on_exceed: Option<OnExceed>,
}

impl RawBudget {
    /// Read a `size_budget:` value; `at` names where it is (`size_budget`,
    /// `images.KEY.size_budget`).
    pub fn parse(v: &Value, at: &str) -> Result<RawBudget, String> {
        let Value::Mapping(m) = v else {
            return Err(format!("`{at}` must be a mapping (max, growth, on_exceed)"));
        };
        let mut out = RawBudget::default();
        for (k, v) in m {
            match k.as_str().unwrap_or_default() {
                "max" => out.max = Some(size(v, &format!("{at}.max"))?),
                "growth" => out.growth = Some(size(v, &format!("{at}.growth"))?),
                "on_exceed" => {
                    out.on_exceed = Some(match v.as_str() {
                        Some("fail") => OnExceed::Fail,
                        Some("warn") => OnExceed::Warn,
                        _ => {
                            return Err(format!(
                                "`{at}.on_exceed` is {}: expected fail or warn",
                                shown(v)
                            ))
                        }
                    })
                }
                other => {
                    return Err(format!(
                        "`{at}` has an unknown key `{other}` (expected max, growth, on_exceed)"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The image's keys over the stack's.
    pub fn resolve(stack: Option<&RawBudget>, image: Option<&RawBudget>) -> SizeBudget {
        let pick = |f: fn(&RawBudget) -> Option<u64>| image.and_then(f).or(stack.and_then(f));
        SizeBudget {
            max: pick(|b| b.max),
            growth: pick(|b| b.growth),
            on_exceed: image
                .and_then(|b| b.on_exceed)
                .or(stack.and_then(|b| b.on_exceed))
                .unwrap_or_default(),
        }
    }
}

/// A size: bytes as a number, or a number with a unit (`8GB`, `500 MB`, `1.5GiB`).
fn size(v: &Value, at: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{at}` is {}: expected a size such as 8GB, 500MB or 1.5GiB",
            shown(v)
        )
    };
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Read a `packages:` list; `at` names where it is.
pub fn parse_packages(v: &Value, at: &str) -> Result<Vec<String>, String> {
    let Value::Sequence(items) = v else {
        return Err(format!(
            "`{at}` must be a list of package managers ({})",
            MANAGERS.join(", ")
        ));
    };
    let mut out: Vec<String> = vec![];
    for item in items {
        match item.as_str() {
            Some(m) if MANAGERS.contains(&m) => {
                if !out.iter().any(|o| o == m) {
                    out.push(m.to_string())
                }
            }
            _ => {
                return Err(format!(
                    "`{at}` names {}: expected one of {}",
                    shown(item),
                    MANAGERS.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn sizes_take_units_and_bytes() {
        let b = RawBudget::parse(&yaml("{max: 8GB, growth: 500 MB}"), "size_budget").unwrap();
        let b = RawBudget::resolve(Some(&b), None);
        assert_eq!(b.max, Some(8_000_000_000));
        assert_eq!(b.growth, Some(500_000_000));
        assert_eq!(b.on_exceed, OnExceed::Fail);
        let b = RawBudget::parse(&yaml("{max: 1048576}"), "x").unwrap();
        assert_eq!(RawBudget::resolve(None, Some(&b)).max, Some(1_048_576));
        let b = RawBudget::parse(&yaml("{max: 1GiB}"), "x").unwrap();
        assert_eq!(RawBudget::resolve(None, Some(&b)).max, Some(1 << 30));
    }

    #[test]
    fn an_image_overrides_the_stack_key_by_key() {
        let stack = RawBudget::parse(&yaml("{max: 8GB, growth: 1GB}"), "size_budget").unwrap();
        let image = RawBudget::parse(&yaml("{growth: 2MB, on_exceed: warn}"), "i").unwrap();
        let b = RawBudget::resolve(Some(&stack), Some(&image));
        assert_eq!(
            b,
            SizeBudget {
                max: Some(8_000_000_000),
                growth: Some(2_000_000),
                on_exceed: OnExceed::Warn
            }
        );
        assert!(!RawBudget::resolve(None, None).any());
    }

    #[test]
    fn bad_budgets_name_the_key() {
        let e = RawBudget::parse(&yaml("{max: huge}"), "images.a.size_budget").unwrap_err();
        assert!(e.contains("`images.a.size_budget.max` is \"huge\""), "{e}");
        let e = RawBudget::parse(&yaml("{maximum: 1GB}"), "size_budget").unwrap_err();
        assert!(e.contains("unknown key `maximum`"), "{e}");
        let e = RawBudget::parse(&yaml("{on_exceed: ignore}"), "size_budget").unwrap_err();
        assert!(e.contains("expected fail or warn"), "{e}");
        assert!(RawBudget::parse(&yaml("8GB"), "size_budget").is_err());
    }

    #[test]
    fn package_lists_are_checked() {
        assert_eq!(
            parse_packages(&yaml("[apt, pip, apt]"), "packages").unwrap(),
            ["apt", "pip"]
        );
        let e = parse_packages(&yaml("[apt, npm]"), "images.a.packages").unwrap_err();
        assert!(e.contains("`images.a.packages` names \"npm\""), "{e}");
        assert!(parse_packages(&yaml("apt"), "packages").is_err());
    }
}
