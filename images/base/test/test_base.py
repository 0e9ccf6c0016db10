"""Tests of the base image itself."""
import json
import pwd
import subprocess


def test_user_jovyan_exists():
    user = pwd.getpwnam("jovyan")
    assert user.pw_uid == 1000
    assert user.pw_dir == "/home/jovyan"


def test_build_info_was_written_at_build_time():
    with open("/opt/stack/build-info.json") as f:
        info = json.load(f)
    assert info["image"] == "base"
    assert "pytest" in info["distributions"]


def test_stack_info_command():
    out = subprocess.run(["stack-info"], check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["python"].startswith("3.")
