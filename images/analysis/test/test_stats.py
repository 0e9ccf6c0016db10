"""Tests of the analysis image."""
import json
import subprocess

import pytest
from stackstats import summarize


def test_summary_of_numbers():
    s = summarize([1, 2, 3, 4])
    assert s["count"] == 4
    assert s["mean"] == 2.5
    assert s["median"] == 2.5
    assert abs(s["stdev"] - 1.2909944) < 1e-6


def test_empty_input_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_summarize_command():
    out = subprocess.run(
        ["summarize"], input="10\n20\n\n30\n", check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out)["median"] == 20.0


def test_selftest_ran_at_build_time():
    with open("/opt/stack/selftest.json") as f:
        assert json.load(f)["count"] == 4
