"""Tests every image of the example stack must pass (copied in with each image's own tests)."""
import json
import os
import subprocess
import sys


def test_python3_is_3_11_or_newer():
    assert sys.version_info >= (3, 11)


def test_debian_bookworm():
    with open("/etc/os-release") as f:
        fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    assert fields["ID"] == "debian"
    assert fields["VERSION_CODENAME"] == "bookworm"


def test_stack_info_names_this_image():
    out = subprocess.run(["stack-info"], check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    assert info["image"] == os.environ["STACK_IMAGE"]
    assert info["image"] in ("base", "analysis", "service")


def test_no_world_writable_commands():
    for d in ("/usr/local/bin",):
        for name in os.listdir(d):
            mode = os.stat(os.path.join(d, name)).st_mode
            assert not mode & 0o002, f"{d}/{name} is world-writable"
