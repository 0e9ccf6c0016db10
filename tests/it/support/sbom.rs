//! A small SBOM generator image for the tests, following BuildKit's SBOM scanner protocol
//! (moby/buildkit docs/attestations/sbom-protocol.md): BuildKit runs it with the built
//! rootfs mounted read-only at `$BUILDKIT_SCAN_SOURCE`, and reads in-toto statements with
//! an SPDX predicate from `$BUILDKIT_SCAN_DESTINATION/<name>.spdx.json`. It lists the dpkg
//! packages and the Python distributions it finds. BuildKit's own default generator
//! (docker/buildkit-syft-scanner) cannot be pulled here; users keep it.
#![allow(dead_code)]

use super::platforms::{self, Layer};
use std::process::Command;

/// The generator's script, run by busybox's sh (the image has nothing else).
const SCAN: &str = r#"#!/bin/sh
set -eu
bb=/bin/busybox
src="$BUILDKIT_SCAN_SOURCE"
out="$BUILDKIT_SCAN_DESTINATION/$($bb basename "$src").spdx.json"
list=/tmp/packages
: > "$list"
if [ -f "$src/var/lib/dpkg/status" ]; then
  $bb awk '
    /^Package: / { name = $2 }
    /^Version: / { version = $2 }
    /^Status: / { installed = ($4 == "installed") }
    /^$/ { if (name != "" && installed) print "deb", name, version; name = ""; version = ""; installed = 0 }
    END { if (name != "" && installed) print "deb", name, version }
  ' "$src/var/lib/dpkg/status" >> "$list"
fi
for d in "$src"/usr/lib/python3*/*-packages/*.dist-info "$src"/usr/local/lib/python3*/*-packages/*.dist-info; do
  [ -d "$d" ] || continue
  base=$($bb basename "$d" .dist-info)
  echo "pypi ${base%%-*} ${base#*-}" >> "$list"
done
$bb awk -v doc="sbom-$($bb basename "$src")" '
  BEGIN { printf "{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"predicateType\":\"https://spdx.dev/Document\",\"subject\":[],\"predicate\":{\"spdxVersion\":\"SPDX-2.3\",\"dataLicense\":\"CC0-1.0\",\"SPDXID\":\"SPDXRef-DOCUMENT\",\"name\":\"%s\",\"documentNamespace\":\"https://stackctl.invalid/sbom/%s\",\"creationInfo\":{\"created\":\"2026-01-01T00:00:00Z\",\"creators\":[\"Tool: stackctl-test-scanner\"]},\"packages\":[", doc, doc }
  { if (NR > 1) printf ","; printf "{\"name\":\"%s\",\"SPDXID\":\"SPDXRef-Package-%d\",\"versionInfo\":\"%s\",\"downloadLocation\":\"NOASSERTION\",\"externalRefs\":[{\"referenceCategory\":\"PACKAGE-MANAGER\",\"referenceType\":\"purl\",\"referenceLocator\":\"pkg:%s/%s@%s\"}]}", $2, NR, $3, $1, $2, $3 }
  END { printf "]}}\n" }
' "$list" > "$out"
"#;

/// Push the generator for linux/amd64 as `<host>/stackctl-local/sbom-scanner:test`
/// (busybox-static and the script); returns that reference.
pub async fn push_generator(host: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("scanner.tar");
    std::fs::copy(platforms::busybox_rootfs("amd64"), &tar).unwrap();
    std::fs::write(work.path().join("scan.sh"), SCAN).unwrap();
    let st = Command::new("tar")
        .current_dir(work.path())
        .args(["--numeric-owner", "--owner=0", "--group=0", "-rf"])
        .arg(&tar)
        .arg("scan.sh")
        .status()
        .unwrap();
    assert!(st.success(), "tar -r scan.sh");
    let layers = [Layer {
        platform: "linux/amd64",
        tar,
    }];
    platforms::push_index_with(
        host,
        "stackctl-local/sbom-scanner",
        "test",
        &layers,
        serde_json::json!({"Env": ["PATH=/bin"], "Entrypoint": ["/bin/busybox", "sh", "/scan.sh"]}),
    )
    .await;
    format!("{host}/stackctl-local/sbom-scanner:test")
}
