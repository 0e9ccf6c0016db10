//! Packages made in the test, for images whose inventory is known without a network: a
//! real `.deb` (dpkg-deb) and a real pure-python wheel (Python's zipfile, RECORD hashed as
//! the wheel spec says), and an engine build of an image that installs them from its
//! build context.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The python base's (Debian bookworm, python 3.11) site directory for packages not from
/// Debian: on `sys.path`, so a wheel unpacked there is installed (no pip in the base).
pub const SITE_PACKAGES: &str = "/usr/local/lib/python3.11/dist-packages";

/// The sh command that installs the wheel at `wheel` (a path in the image) without pip or
/// the network: a pure-python wheel is a zip to unpack into site-packages.
pub fn install_wheel(wheel: &str) -> String {
    format!("python3 -m zipfile -e {wheel} {SITE_PACKAGES}")
}

/// `<dir>/<name>_<version>_all.deb` (no epoch in the name), built by `dpkg-deb --build --root-owner-group` from a
/// control file and one file, `/usr/share/<name>/VERSION`.
pub fn make_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    // File names leave the epoch out, as Debian's do.
    let file_version = version.split_once(':').map_or(version, |(_, v)| v);
    let root = dir.join(format!("{name}_{file_version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share").join(name)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: stackctl tests <tests@stackctl.invalid>\n\
             Description: a package made by stackctl's tests\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("usr/share").join(name).join("VERSION"),
        format!("{version}\n"),
    )
    .unwrap();
    let deb = dir.join(format!("{name}_{file_version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb --build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// Writes the wheel: argv = name, version, output directory; prints its path.
const WHEEL_PY: &str = r#"
import base64, hashlib, os, sys, zipfile
name, version, out = sys.argv[1:4]
esc = name.replace("-", "_").replace(".", "_")
info = "%s-%s.dist-info" % (esc, version)
files = [
    ("%s/__init__.py" % esc, "__version__ = %r\n" % version),
    (info + "/METADATA", "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: made by stackctl's tests\n" % (name, version)),
    (info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: stackctl-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
]
record = []
for path, text in files:
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d\n" % (path, digest, len(data)))
record.append(info + "/RECORD,,\n")
files.append((info + "/RECORD", "".join(record)))
whl = os.path.join(out, "%s-%s-py3-none-any.whl" % (esc, version))
with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
    for path, text in files:
        z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
print(whl)
"#;

/// `<dir>/<name>-<version>-py3-none-any.whl`: a pure-python wheel of one package,
/// `<name>/__init__.py` with `__version__`, and its `.dist-info` (METADATA, WHEEL, RECORD).
/// `-` and `.` in `name` are `_` in the file names, as the wheel spec escapes them.
pub fn make_wheel(dir: &Path, name: &str, version: &str) -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", WHEEL_PY, name, version])
        .arg(dir)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "making the wheel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Build `dockerfile` with `files` (copied beside it, any bytes) through the engine's
/// legacy builder as `tag`; the build log is in the panic when it fails.
pub async fn build_image(tag: &str, dockerfile: &str, files: &[PathBuf]) -> String {
    use bollard::query_parameters::BuildImageOptionsBuilder;
    use futures::StreamExt;
    let d = super::images::docker().await;
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for f in files {
        std::fs::copy(f, ctx.path().join(f.file_name().unwrap())).unwrap();
    }
    let opts = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let tar = super::images::tar_dir(ctx.path());
    let mut s = d.build_image(opts, None, Some(bollard::body_full(tar.into())));
    let mut log = String::new();
    while let Some(r) = s.next().await {
        match r {
            Ok(info) => {
                if let Some(e) = info.error_detail {
                    panic!("build of {tag} failed: {e:?}\n{log}");
                }
                log.push_str(&info.stream.unwrap_or_default());
            }
            Err(e) => panic!("build of {tag} failed: {e}\n{log}"),
        }
    }
    tag.to_string()
}
