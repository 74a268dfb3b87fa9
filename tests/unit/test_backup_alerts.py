"""The backup alerts of the one rule file, run by promtool against what free4allweb-backup writes.

The metrics file is written by the tool's own code (cli.export_outcome); its series, with the
labels a scrape adds, are fed to `promtool test rules` over simulated hours."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.free4allweb.devops.plugins.module_utils.backup import cli

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles" / "monitoring" / "files" / "free4allweb.rules.yml"
SCRAPE = 'instance="db:9100",job="node"'


class FakeContext:
    def __init__(self, path: Path):
        self.stanza = "main"
        self.config = {"metrics_file": str(path)}


def outcome_series(path: Path) -> list[dict]:
    """Each sample line of the metrics file as a promtool input series, held for 10 hours."""
    series = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, labels = name_labels.split("{", 1)
        series.append({"series": f"{name}{{{labels[:-1]},{SCRAPE}}}", "values": f"{float(value):.0f}x120"})
    return series


def promtool(tmp_path: Path, series: list[dict], tests: list[dict]) -> subprocess.CompletedProcess:
    if not shutil.which("promtool"):
        pytest.fail("promtool is missing (scripts/bootstrap --test installs Debian's prometheus)")
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "5m", "input_series": series, "alert_rule_test": tests}],
    }
    path = tmp_path / "backup-alerts.test.yml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return subprocess.run(
        ["promtool", "test", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )


def description(name: str) -> str:
    """An alert's description as the rule file has it (promtool compares annotations too)."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return rule["annotations"]["description"]
    raise KeyError(name)


def alert(name: str, at: str, *expected: tuple[dict, str]) -> dict:
    """Expect `name` at `at` with each (labels, summary) given, or not firing when none is."""
    return {
        "alertname": name,
        "eval_time": at,
        "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": {"summary": summary, "description": description(name)}}
            for labels, summary in expected
        ],
    }


def labels(**extra) -> dict:
    return {"instance": "db:9100", "job": "node", "stanza": "main", **extra}


def test_a_failed_backup_alerts_at_once_and_a_late_one_after_seven_hours(tmp_path):
    metrics = tmp_path / "free4allweb_backup.prom"
    ctx = FakeContext(metrics)
    # at time 0 (promtool's clock starts at the epoch): a good full, a good logical, a failed diff
    cli.export_outcome(ctx, "full", 0.0, ok=True, now=0.0)
    cli.export_outcome(ctx, "logical", 0.0, ok=True, now=0.0)
    cli.export_outcome(ctx, "diff", 0.0, ok=True, now=0.0)
    cli.export_outcome(ctx, "diff", 0.0, ok=False, now=0.0)
    outcomes = cli.read_outcomes(metrics.read_text())
    # the failed diff keeps the time of its last success
    assert outcomes["diff"] == {"ended": 0.0, "success": 0.0, "seconds": 0.0, "last_success": 0.0}
    assert outcomes["full"]["success"] == 1.0
    textfile = "/var/lib/prometheus/node-exporter/free4allweb_backup.prom"
    mtime = {"series": f'node_textfile_mtime_seconds{{file="{textfile}",{SCRAPE}}}', "values": "0x120"}
    run = promtool(
        tmp_path,
        [*outcome_series(metrics), mtime],
        [
            alert(
                "Free4allwebBackupFailed",
                "1m",
                (labels(type="diff", severity="sev2"), "The last diff backup of stanza main on db:9100 failed"),
            ),
            alert("Free4allwebBackupLate", "6h"),
            alert(
                "Free4allwebBackupLate",
                "7h10m",
                (
                    {"instance": "db:9100", "stanza": "main", "severity": "sev2"},
                    "No physical backup of stanza main on db:9100 has succeeded for 7 h",
                ),
            ),
            alert("Free4allwebLogicalBackupLate", "25h"),
            alert("Free4allwebBackupNotRunning", "6h"),
            alert(
                "Free4allwebBackupNotRunning",
                "7h10m",
                (
                    {"instance": "db:9100", "job": "node", "file": textfile, "severity": "sev2"},
                    "No backup command has run on db:9100 for 7 h",
                ),
            ),
        ],
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_good_backup_clears_the_failure(tmp_path):
    metrics = tmp_path / "free4allweb_backup.prom"
    ctx = FakeContext(metrics)
    cli.export_outcome(ctx, "diff", 0.0, ok=False, now=0.0)
    assert "last_success" not in cli.read_outcomes(metrics.read_text())["diff"]
    cli.export_outcome(ctx, "diff", 0.0, ok=True, now=60.0)
    run = promtool(tmp_path, outcome_series(metrics), [alert("Free4allwebBackupFailed", "1m")])
    assert run.returncode == 0, run.stdout + run.stderr


def test_an_unwritable_metrics_file_does_not_change_the_result(tmp_path, capsys):
    ctx = FakeContext(tmp_path / "missing-dir" / "free4allweb_backup.prom")
    cli.export_outcome(ctx, "full", 0.0, ok=True, now=1.0)
    assert "could not write the metrics file" in capsys.readouterr().err
