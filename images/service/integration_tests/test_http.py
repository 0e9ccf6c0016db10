"""Integration tests: the service runs in its own container, these tests in another one
on the same network. stackctl passes its address in SERVICE_URL (and SERVICE_NAME)."""
import json
import os
import urllib.error
import urllib.request

import pytest


def base_url():
    if os.environ.get("SERVICE_URL"):
        return os.environ["SERVICE_URL"].rstrip("/")
    return "http://{}:8000".format(os.environ["SERVICE_NAME"])


def get(path):
    with urllib.request.urlopen(base_url() + path, timeout=10) as r:
        return r.status, r.headers["Content-Type"], json.load(r)


def test_health():
    assert get("/health") == (200, "application/json", {"status": "ok"})


def test_info_names_the_service_image():
    status, _, body = get("/info")
    assert status == 200
    assert body["image"] == "service"
    assert body["python"].startswith("3.")


def test_unknown_path_answers_404_json():
    with pytest.raises(urllib.error.HTTPError) as e:
        get("/missing")
    assert e.value.code == 404
    assert "missing" in json.load(e.value)["error"]
