//! The spec's `attest:` section: the evidence BuildKit attaches to an image it pushes. At the
//! stack's top level it applies to every image; an image's own `attest:` overrides it key by
//! key.
//!
//! ```yaml
//! attest:
//!   provenance: min          # max (build-arg values included), or off; default min
//!   sbom:                    # off (the default), {} (BuildKit's default generator),
//!     generator: IMAGE       #   or a generator image of BuildKit's SBOM scanner protocol
//!   required: true           # a builder that cannot attest is an error, not a warning
//! ```

use serde_yaml::Value;

/// SLSA provenance: how much of the build it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvenanceMode {
    /// Materials, the frontend, the commit: no build-arg values.
    #[default]
    Min,
    /// Also build-arg values and the build's steps.
    Max,
    Off,
}

/// An SBOM attestation and who writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "generator")]
pub enum Sbom {
    #[default]
    Off,
    /// `None`: BuildKit's default generator (docker/buildkit-syft-scanner).
    On(Option<String>),
}

/// One image's attestation settings, the stack's and the image's merged.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct AttestSpec {
    pub provenance: ProvenanceMode,
    pub sbom: Sbom,
    /// A builder that cannot attest stops the run before anything is built.
    pub required: bool,
}

impl AttestSpec {
    /// Whether anything would be attached.
    pub fn any(&self) -> bool {
        self.provenance != ProvenanceMode::Off || self.sbom != Sbom::Off
    }
}

/// An `attest:` section as read, each key still optional so an image's can fall back to the
/// stack's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawAttest {
    provenance: Option<ProvenanceMode>,
    sbom: Option<Sbom>,
    required: Option<bool>,
}

impl RawAttest {
    /// Read an `attest:` value; `at` names where it is (`attest`, `images.KEY.attest`).
    pub fn parse(v: &Value, at: &str) -> Result<RawAttest, String> {
        let Value::Mapping(m) = v else {
            return Err(format!(
                "`{at}` must be a mapping (provenance, sbom, required)"
            ));
        };
        let mut out = RawAttest::default();
        for (k, v) in m {
            let key = k.as_str().unwrap_or_default();
            match key {
                "provenance" => {
                    out.provenance = Some(match scalar(v).as_deref() {
                        Some("min") => ProvenanceMode::Min,
                        Some("max") => ProvenanceMode::Max,
                        Some("off") => ProvenanceMode::Off,
                        _ => {
                            return Err(format!(
                                "`{at}.provenance` is {}: expected min, max or off",
                                shown(v)
                            ))
                        }
                    })
                }
                "sbom" => out.sbom = Some(sbom(v, &format!("{at}.sbom"))?),
                "required" => match v {
                    Value::Bool(b) => out.required = Some(*b),
                    _ => {
                        return Err(format!(
                            "`{at}.required` is {}: expected true or false",
                            shown(v)
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "`{at}` has an unknown key `{}` (expected provenance, sbom, required)",
                        key_name(k)
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The image's keys over the stack's, over the defaults.
    pub fn resolve(stack: Option<&RawAttest>, image: Option<&RawAttest>) -> AttestSpec {
        AttestSpec {
            provenance: image
                .and_then(|a| a.provenance)
                .or(stack.and_then(|a| a.provenance))
                .unwrap_or_default(),
            sbom: image
                .and_then(|a| a.sbom.clone())
                .or(stack.and_then(|a| a.sbom.clone()))
                .unwrap_or_default(),
            required: image
                .and_then(|a| a.required)
                .or(stack.and_then(|a| a.required))
                .unwrap_or(false),
        }
    }
}

fn sbom(v: &Value, at: &str) -> Result<Sbom, String> {
    match v {
        Value::Bool(false) => Ok(Sbom::Off),
        Value::Bool(true) => Ok(Sbom::On(None)),
        Value::String(s) if s == "off" => Ok(Sbom::Off),
        Value::Mapping(m) => {
            let mut generator = None;
            for (k, v) in m {
                match k.as_str() {
                    Some("generator") => match scalar(v) {
                        Some(g) if !g.trim().is_empty() && !g.contains(char::is_whitespace) => {
                            generator = Some(g)
                        }
                        _ => {
                            return Err(format!(
                                "`{at}.generator` is {}: expected an image reference",
                                shown(v)
                            ))
                        }
                    },
                    _ => {
                        return Err(format!(
                            "`{at}` has an unknown key `{}` (expected generator)",
                            key_name(k)
                        ))
                    }
                }
            }
            Ok(Sbom::On(generator))
        }
        _ => Err(format!(
            "`{at}` is {}: expected off, or {{generator: IMAGE}} ({{}} for BuildKit's default)",
            shown(v)
        )),
    }
}

fn key_name(k: &Value) -> String {
    k.as_str().map(str::to_string).unwrap_or_else(|| shown(k))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A value as the user wrote it, for a message.
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

    fn raw(y: &str) -> Result<RawAttest, String> {
        RawAttest::parse(&serde_yaml::from_str(y).unwrap(), "attest")
    }

    #[test]
    fn defaults_are_min_provenance_and_no_sbom() {
        let a = RawAttest::resolve(None, None);
        assert_eq!(a.provenance, ProvenanceMode::Min);
        assert_eq!(a.sbom, Sbom::Off);
        assert!(!a.required);
        assert!(a.any());
    }

    #[test]
    fn an_image_overrides_the_stack_key_by_key() {
        let stack = raw("{provenance: max, sbom: {generator: reg/gen:1}, required: true}").unwrap();
        let image = raw("{sbom: off}").unwrap();
        let a = RawAttest::resolve(Some(&stack), Some(&image));
        assert_eq!(a.provenance, ProvenanceMode::Max);
        assert_eq!(a.sbom, Sbom::Off);
        assert!(a.required);
        let b = RawAttest::resolve(Some(&stack), None);
        assert_eq!(b.sbom, Sbom::On(Some("reg/gen:1".into())));
        let off = raw("{provenance: off}").unwrap();
        assert!(!RawAttest::resolve(None, Some(&off)).any());
    }

    #[test]
    fn sbom_forms() {
        assert_eq!(raw("{sbom: {}}").unwrap().sbom, Some(Sbom::On(None)));
        assert_eq!(raw("{sbom: true}").unwrap().sbom, Some(Sbom::On(None)));
        assert_eq!(raw("{sbom: false}").unwrap().sbom, Some(Sbom::Off));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = raw("{provenance: full}").unwrap_err();
        assert!(
            e.contains("`attest.provenance`") && e.contains("\"full\""),
            "{e}"
        );
        let e = raw("{sbom: {generator: ''}}").unwrap_err();
        assert!(e.contains("`attest.sbom.generator`"), "{e}");
        let e = raw("{sbom: {gen: x}}").unwrap_err();
        assert!(e.contains("unknown key `gen`"), "{e}");
        let e = raw("{required: yes-please}").unwrap_err();
        assert!(e.contains("`attest.required`"), "{e}");
        let e = raw("{sign: x}").unwrap_err();
        assert!(e.contains("unknown key"), "{e}");
        let e = RawAttest::parse(&Value::String("min".into()), "images.a.attest").unwrap_err();
        assert!(e.contains("`images.a.attest` must be a mapping"), "{e}");
    }
}
