"""The deploy_lock and deploy_record modules' option handling, run as Ansible runs a module
(python, a JSON argument file). No cluster or database is needed: these fail before any call,
or use the file backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, module: str, args: dict, check: bool = False) -> dict:
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "collections")}
    proc = subprocess.run(
        [sys.executable, "-m", f"ansible_collections.free4allweb.devops.plugins.modules.{module}", str(argfile)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(proc.stdout)


def test_the_old_top_level_path_still_works(tmp_path):
    path = str(tmp_path / "deploy.lock")
    got = run(tmp_path, "deploy_lock", {"path": path, "token": "run-1", "owner": "alice", "purpose": "deploy 2.0.0"})
    assert not got.get("failed") and got["holder"]["token"] == "run-1" and got["lock"] == path, got
    busy = run(tmp_path, "deploy_lock", {"options": {"path": path}, "token": "run-2", "timeout": 0})
    assert busy["failed"] and busy["msg"].startswith(f"deploy lock {path} is held by 'alice' for 'deploy 2.0.0'")
    peek = run(tmp_path, "deploy_lock", {"backend": "file", "options": {"path": path}, "token": "run-2"}, check=True)
    assert peek["free"] is False and peek["holder"]["owner"] == "alice"
    refused = run(tmp_path, "deploy_lock", {"path": path, "state": "released", "token": "run-2"})
    assert refused["failed"] and "not by this run" in refused["msg"]
    done = run(tmp_path, "deploy_lock", {"path": path, "state": "released", "token": "run-1"})
    assert done["released"] is True and not Path(path).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"backend": "kubernetes", "options": {"namespce": "x"}}, "unknown options.namespce (it takes context,"),
        ({"backend": "kubernetes", "options": {}}, "missing required arguments: options.namespace"),
        ({"backend": "kubernetes", "options": {"namespace": "Bad_NS"}}, "options.namespace 'Bad_NS' is not a valid"),
        ({"backend": "kubernetes", "options": {"namespace": "ns", "name": "a/b"}}, "options.name 'a/b' is not a valid"),
        ({"backend": "kubernetes", "options": {"namespace": "ns"}, "path": "/x"}, "path is for the file backend"),
        ({"backend": "file", "options": {"namespace": "ns"}}, "unknown options.namespace (it takes path)"),
        ({"options": {"path": "/a"}, "path": "/b"}, "options.path or path, not both"),
        ({"backend": "etcd"}, "value of backend must be one of: file, kubernetes"),
    ],
)
def test_bad_lock_options_are_named(tmp_path, args, message):
    out = run(tmp_path, "deploy_lock", {"state": "query", **args})
    assert out.get("failed") and message in out["msg"], out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"store": "kubernetes"}, "missing required arguments: store_options.namespace"),
        ({"store": "kubernetes", "store_options": {"namespace": "ns", "db": 1}}, "unknown store_options.db"),
        ({"store_options": {"namespace": "ns"}}, "unknown store_options.namespace (it takes none"),
        ({"store": "mysql"}, "value of store must be one of: postgresql, kubernetes"),
    ],
)
def test_bad_record_options_are_named(tmp_path, args, message):
    out = run(tmp_path, "deploy_record", {"state": "latest", "environment": "local", **args})
    assert out.get("failed") and message in out["msg"], out
