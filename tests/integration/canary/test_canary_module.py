"""canary_evaluate, run by ansible-playbook, against a real Prometheus scraping stand-in app slots.

One playbook run judges every scenario (see conftest.py), then tries check mode and an
unreachable Prometheus. The tests assert on the verdicts the module returned.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture(scope="module")
def results(canary_prometheus, tmp_path_factory):
    out = tmp_path_factory.mktemp("canary-results")
    extra = {
        "prometheus_url": canary_prometheus.url,
        "unreachable_url": f"http://127.0.0.1:{canary_prometheus.closed_port()}",
        "scenarios": list(canary_prometheus.scenarios),
        "lookback": f"{canary_prometheus.window_s}s",
        "warmup": f"{canary_prometheus.warmup_s}s",
        "step": "2s",
        "out_dir": str(out),
    }
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(HERE / "evaluate.yml"), "-e", json.dumps(extra)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    found = {s: json.loads((out / f"{s}.json").read_text()) for s in canary_prometheus.scenarios}
    found.update(json.loads((out / "other.json").read_text()))
    found["_dir"] = out
    return found


def by_name(result: dict) -> dict:
    return {m["name"]: m for m in result["metrics"]}


def test_aa_passes(results):
    r = results["aa"]
    assert r["verdict"] == "pass", r["reason"]
    assert r["score"] == 100
    assert all(m["classification"] == "pass" for m in r["metrics"])
    m = by_name(r)
    # the judge saw both colours' data: ~100 req/s over the window, 2 s steps
    assert m["error_ratio"]["n_canary"] > 2000 and m["error_ratio"]["n_baseline"] > 2000
    assert m["latency_p95"]["n_canary"] >= 15


def test_plus_five_points_of_errors_fail(results):
    r = results["errors"]
    assert r["verdict"] == "fail"
    m = by_name(r)["error_ratio"]
    assert m["classification"] == "fail"
    assert 0.03 < m["effect"] < 0.07
    assert m["p_value"] < 1e-6
    assert "critical metric failed: error_ratio" in r["reason"]


def test_plus_fifty_percent_latency_fails(results):
    r = results["latency"]
    assert r["verdict"] == "fail"
    m = by_name(r)
    assert m["latency_p95"]["classification"] == "fail"
    assert m["latency_p95"]["effect_relative"] > 0.3
    assert m["error_ratio"]["classification"] == "pass"


def test_heavier_tail_with_the_same_median_fails(results):
    r = results["tail"]
    assert r["verdict"] == "fail"
    m = by_name(r)
    assert m["latency_tail"]["classification"] == "fail"
    assert m["latency_tail"]["reason"].startswith("heavier tail")
    # the median did not move beyond the tolerance: only the tail did
    assert m["latency_p50"]["classification"] != "fail"
    assert abs(m["latency_p50"]["effect_relative"]) < 0.1


def test_significant_but_negligible_difference_passes(results):
    # +0.65 points of errors over ~24,000 requests each: significant, yet within the 2-point tolerance
    r = results["negligible"]
    m = by_name(r)["error_ratio"]
    assert m["p_value"] < m["alpha"], m["reason"]
    assert m["classification"] == "pass", m["reason"]
    assert "significant but within tolerance" in m["reason"]
    assert r["verdict"] == "pass"


def test_reports_are_written_with_charts(results):
    html = (results["_dir"] / "tail.html").read_text()
    assert "<svg" in html and "heavier tail" in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert results["tail"]["report_path"].endswith("tail.html")


def test_check_mode_judges_but_writes_no_report(results):
    r = results["check_mode"]
    assert r["verdict"] == "pass" and r["changed"] is False
    assert "report_path" not in r
    assert not (results["_dir"] / "check-mode.html").exists()


def test_unreachable_prometheus_is_a_clear_failure_not_a_pass(results):
    r = results["unreachable"]
    assert r["failed"] is True
    assert r["verdict"] == "error"
    assert "cannot reach Prometheus" in r["msg"]
