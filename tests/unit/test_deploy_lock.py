"""The deploy lock, on a real filesystem, with real threads and processes contending."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_lock


def test_acquire_and_release(tmp_path):
    path = str(tmp_path / "deploy.lock")
    got = deploy_lock.acquire(path, "run-1", "alice", "deploy 1.0.0")
    assert got["acquired"].owner == "alice" and not got["already_held"]
    assert deploy_lock.status(path).token == "run-1"
    assert deploy_lock.release(path, "run-1")["released"] is True
    assert deploy_lock.status(path) is None


def test_same_token_reenters(tmp_path):
    path = str(tmp_path / "deploy.lock")
    deploy_lock.acquire(path, "run-1", "alice")
    again = deploy_lock.acquire(path, "run-1", "alice", timeout=0)
    assert again["already_held"] is True


def test_second_run_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / "deploy.lock")
    deploy_lock.acquire(path, "run-1", "alice", "deploy 1.0.0")
    started = time.monotonic()
    with pytest.raises(deploy_lock.LockBusy, match=r"held by 'alice' for 'deploy 1.0.0'"):
        deploy_lock.acquire(path, "run-2", "bob", timeout=1, poll=0.1)
    assert 0.9 <= time.monotonic() - started < 3


def test_waiter_gets_the_lock_when_it_is_released(tmp_path):
    path = str(tmp_path / "deploy.lock")
    deploy_lock.acquire(path, "run-1", "alice")
    threading.Timer(0.5, deploy_lock.release, args=(path, "run-1")).start()
    got = deploy_lock.acquire(path, "run-2", "bob", timeout=10, poll=0.05)
    assert got["acquired"].token == "run-2" and got["waited"] >= 0.4


def test_expired_lock_is_broken(tmp_path):
    path = str(tmp_path / "deploy.lock")
    deploy_lock.acquire(path, "dead-run", "alice", ttl=0.2)
    time.sleep(0.3)
    got = deploy_lock.acquire(path, "run-2", "bob", timeout=0)
    assert got["broke"].token == "dead-run"
    assert deploy_lock.status(path).token == "run-2"


def test_only_the_holder_can_release(tmp_path):
    path = str(tmp_path / "deploy.lock")
    deploy_lock.acquire(path, "run-1", "alice")
    with pytest.raises(deploy_lock.LockNotOwned):
        deploy_lock.release(path, "run-2")
    assert deploy_lock.status(path).token == "run-1"
    assert deploy_lock.release(str(tmp_path / "none.lock"), "x")["released"] is False


def _contend(path, token, hold, log):
    got = deploy_lock.acquire(path, token, token, timeout=30, poll=0.01)
    log.put(("in", token, time.monotonic()))
    time.sleep(hold)
    log.put(("out", token, time.monotonic()))
    deploy_lock.release(path, got["acquired"].token)


def test_contending_processes_never_overlap(tmp_path):
    path = str(tmp_path / "deploy.lock")
    log = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_contend, args=(path, f"run-{i}", 0.1, log)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    events = sorted((log.get() for _ in range(12)), key=lambda e: e[2])
    holder = None
    for kind, token, _ in events:
        if kind == "in":
            assert holder is None, f"{token} entered while {holder} held the lock"
            holder = token
        else:
            assert holder == token
            holder = None
    assert {t for k, t, _ in events if k == "in"} == {f"run-{i}" for i in range(6)}
