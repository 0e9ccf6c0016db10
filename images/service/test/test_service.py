"""Basic tests of the service image: the handler's answers, and a real server on loopback."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, "/opt/stack")
from serve import answer  # noqa: E402


def test_health_answer():
    assert answer("/health") == (200, {"status": "ok"})


def test_unknown_path_is_404():
    status, body = answer("/nope")
    assert status == 404
    assert "/nope" in body["error"]


@pytest.fixture
def server():
    env = {"SERVICE_PORT": "18000", "PYTHONPATH": "/opt/stack/lib", "STACK_IMAGE": "service"}
    proc = subprocess.Popen(
        [sys.executable, "/opt/stack/serve.py"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "serving on port 18000"
        yield "http://127.0.0.1:18000"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serves_json_on_loopback(server):
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(server + "/info", timeout=5) as r:
                assert r.headers["Content-Type"] == "application/json"
                assert json.load(r)["image"] == "service"
            break
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
