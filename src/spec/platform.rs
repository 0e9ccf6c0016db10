//! Target platforms (`platforms:` in the spec, `--platform` of `stackctl build`): `os/arch`
//! or `os/arch/variant`, as BuildKit and the OCI image index name them.

use serde_yaml::Value;
use std::str::FromStr;

/// A platform as written on the command line and in the spec: `os/arch[/variant]`; also
/// read from an index entry's `platform` or an image config (their `os`, `architecture`,
/// `variant`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether this platform (an index entry's) is `wanted`. A wanted platform without a
    /// variant matches any variant; `linux/arm64/v8` matches an entry without one (BuildKit
    /// leaves arm64's default variant out).
    pub fn is(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(v)) => w == v,
            (Some(w), None) => wanted.architecture == "arm64" && w == "v8",
        }
    }
}

impl Platform {
    /// `linux/amd64` → `linux-amd64`: a platform as part of a file name.
    pub fn file_part(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

/// A platform equals its written form (`linux/arm64`), so that lists compare with text.
impl PartialEq<str> for Platform {
    fn eq(&self, other: &str) -> bool {
        let mut parts = other.splitn(3, '/');
        parts.next() == Some(self.os.as_str())
            && parts.next() == Some(self.architecture.as_str())
            && parts.next() == self.variant.as_deref()
    }
}

impl PartialEq<&str> for Platform {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl FromStr for Platform {
    type Err = String;

    /// Checked as the spec checks its `platforms:` ([`check`]).
    fn from_str(s: &str) -> Result<Self, String> {
        check(s)?;
        let parts: Vec<&str> = s.split('/').collect();
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Architectures BuildKit builds for (Go's names, as OCI uses them).
const ARCHES: [&str; 12] = [
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64",
    "loong64", "wasm",
];
/// Operating systems an image index names.
const OSES: [&str; 5] = ["linux", "windows", "freebsd", "darwin", "wasip1"];

/// Check one platform (`linux/arm64`, `linux/arm/v7`); the message says what is wrong.
pub fn check(p: &str) -> Result<(), String> {
    let parts: Vec<&str> = p.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "platform {p:?} is not `os/arch` or `os/arch/variant` (e.g. linux/amd64, linux/arm64, linux/arm/v7)"
        ));
    }
    let (os, arch) = (parts[0], parts[1]);
    if !OSES.contains(&os) {
        return Err(format!(
            "platform {p:?}: unknown operating system `{os}` (known: {})",
            OSES.join(", ")
        ));
    }
    if !ARCHES.contains(&arch) {
        let hint = match arch {
            "x86_64" | "x86-64" | "x64" => " (write amd64)",
            "aarch64" | "arm64v8" => " (write arm64)",
            _ => "",
        };
        return Err(format!(
            "platform {p:?}: unknown architecture `{arch}`{hint} (known: {})",
            ARCHES.join(", ")
        ));
    }
    if let Some(v) = parts.get(2) {
        if !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(format!(
                "platform {p:?}: the variant `{v}` must be lower-case letters and digits (e.g. v7, v8)"
            ));
        }
    }
    Ok(())
}

/// A YAML list of platforms, checked one by one; duplicates are refused too.
pub(super) fn parse_list(v: &Value, key: &str) -> Result<Vec<Platform>, Vec<String>> {
    let Value::Sequence(items) = v else {
        return Err(vec![format!(
            "`{key}` must be a list such as [linux/amd64, linux/arm64]"
        )]);
    };
    let mut out: Vec<Platform> = vec![];
    let mut errs = vec![];
    for item in items {
        match item {
            Value::String(s) => match s.parse::<Platform>() {
                Ok(p) if out.contains(&p) => errs.push(format!("`{key}`: {s} is listed twice")),
                Ok(p) => out.push(p),
                Err(e) => errs.push(format!("`{key}`: {e}")),
            },
            _ => errs.push(format!(
                "`{key}`: every entry must be a string such as linux/arm64"
            )),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// The platform of this machine (where the engine runs tests natively), e.g. `linux/amd64`.
pub fn native() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: None,
    }
}

/// `linux/amd64, linux/arm64`: platforms for messages, separated by `sep`.
pub fn list(platforms: &[Platform], sep: &str) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_platforms() {
        for ok in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm64/v8",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let e = check("linux/aarch64").unwrap_err();
        assert!(
            e.contains("unknown architecture `aarch64` (write arm64)"),
            "{e}"
        );
        let e = check("linux/x86_64").unwrap_err();
        assert!(e.contains("(write amd64)"), "{e}");
        assert!(check("amd64").unwrap_err().contains("not `os/arch`"));
        assert!(check("linux/").unwrap_err().contains("not `os/arch`"));
        assert!(check("linux/arm/v7/x")
            .unwrap_err()
            .contains("not `os/arch`"));
        assert!(check("plan9/amd64")
            .unwrap_err()
            .contains("unknown operating system"));
        assert!(check("linux/arm/V7").unwrap_err().contains("variant"));
    }

    #[test]
    fn lists() {
        let v: Value = serde_yaml::from_str("[linux/amd64, linux/arm64]").unwrap();
        assert_eq!(
            list(&parse_list(&v, "platforms").unwrap(), ", "),
            "linux/amd64, linux/arm64"
        );
        let v: Value = serde_yaml::from_str("linux/amd64").unwrap();
        assert!(parse_list(&v, "platforms").unwrap_err()[0].contains("must be a list"));
        let v: Value = serde_yaml::from_str("[linux/amd64, linux/amd64, 3]").unwrap();
        let errs = parse_list(&v, "platforms").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("listed twice"));
        assert_eq!(native().os, "linux");
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64 == "linux/arm64" && arm64 != "linux/arm64/v8" && arm64 != "linux/arm");
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(
            (arm.to_string(), arm.file_part()),
            ("linux/arm/v7".into(), "linux-arm-v7".into())
        );
    }

    #[test]
    fn index_entries() {
        let is = |entry: &str, wanted: &str| {
            serde_json::from_str::<Platform>(entry)
                .unwrap()
                .is(&wanted.parse().unwrap())
        };
        assert!(is(
            r#"{"os":"linux","architecture":"arm64"}"#,
            "linux/arm64"
        ));
        assert!(is(
            r#"{"os":"linux","architecture":"arm64"}"#,
            "linux/arm64/v8"
        ));
        assert!(is(
            r#"{"os":"linux","architecture":"arm","variant":"v7"}"#,
            "linux/arm/v7"
        ));
        assert!(!is(
            r#"{"os":"linux","architecture":"arm","variant":"v6"}"#,
            "linux/arm/v7"
        ));
        assert!(!is(
            r#"{"os":"unknown","architecture":"unknown"}"#,
            "linux/amd64"
        ));
    }
}
