"""scripts/lib/apt.sh (scripts/bootstrap's apt step) against stand-in lock files, a stand-in
policy-rc.d and a stand-in apt-get: a held apt lock is waited for, within a bound, naming the lock
and its holder; the host's own policy-rc.d is left as it was found, whether the install succeeds
or fails. Nothing here touches the host's apt."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "scripts" / "lib" / "apt.sh"

HOLDER = """
import fcntl, sys, time
fh = open(sys.argv[1], "a")
fcntl.lockf(fh, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def bash(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "F4A_POLICY_RC": str(tmp_path / "policy-rc.d"), **env}
    return subprocess.run(
        ["bash", "-c", f". {LIB}\n{script}"], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def hold(lock: Path, seconds: float) -> subprocess.Popen:
    """Another process holding `lock` as apt does (an fcntl record lock) for `seconds`."""
    lock.touch()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_no_lock_held_returns_at_once(tmp_path):
    locks = f"{tmp_path / 'lock-frontend'} {tmp_path / 'absent'}"
    (tmp_path / "lock-frontend").touch()
    started = time.monotonic()
    run = bash("apt_locks_wait 30", tmp_path, F4A_APT_LOCKS=locks)
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 3


def test_a_held_lock_is_waited_for_until_released(tmp_path):
    lock = tmp_path / "lock-frontend"
    holder = hold(lock, 3)
    try:
        started = time.monotonic()
        run = bash("apt_locks_wait 30", tmp_path, F4A_APT_LOCKS=str(lock))
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 0, run.stderr
    assert 2 <= waited < 10, waited
    assert f"waiting for apt: {lock} is held by process {holder.pid}" in run.stderr


def test_a_lock_held_too_long_fails_in_bounded_time_naming_it(tmp_path):
    lock = tmp_path / "lists-lock"
    holder = hold(lock, 30)
    try:
        started = time.monotonic()
        run = bash("apt_locks_wait 2", tmp_path, F4A_APT_LOCKS=f"{tmp_path / 'free'} {lock}")
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 1
    assert waited < 6, waited
    assert f"{lock} is still held by process {holder.pid}" in run.stderr and "F4A_APT_LOCK_WAIT" in run.stderr


def fake_apt(tmp_path: Path, rc: int) -> dict:
    """apt-get that records whether services were held back while it ran, and exits `rc`."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    seen = tmp_path / "seen"
    script = bindir / "apt-get"
    script.write_text(
        f'#!/bin/sh\n{{ echo "$*"; [ -x {tmp_path / "policy-rc.d"} ] && {tmp_path / "policy-rc.d"}; '
        f'echo "policy=$?"; }} >>{seen}\nexit {rc}\n'
    )
    script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "F4A_APT_LOCKS": str(tmp_path / "none")}


def test_services_are_held_during_the_install_and_the_host_policy_is_put_back(tmp_path):
    run = bash("apt_install_held nginx-light wrk", tmp_path, **fake_apt(tmp_path, 0))
    assert run.returncode == 0, run.stderr
    seen = (tmp_path / "seen").read_text()
    # update then install, each with the lock timeout, each with services held back (exit 101)
    assert seen.count("policy=101") == 2, seen
    assert "DPkg::Lock::Timeout=600 update" in seen and "install nginx-light wrk" in seen, seen
    assert not (tmp_path / "policy-rc.d").exists(), "bootstrap left its policy-rc.d on the host"


def test_a_failed_install_still_removes_our_policy(tmp_path):
    run = bash("apt_install_held nginx-light", tmp_path, **fake_apt(tmp_path, 100))
    assert run.returncode == 100
    assert not (tmp_path / "policy-rc.d").exists()


def test_a_policy_the_host_already_has_is_left_alone(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# the host's own\nexit 0\n")
    policy.chmod(0o755)
    run = bash("apt_install_held nginx-light", tmp_path, **fake_apt(tmp_path, 0))
    assert run.returncode == 0, run.stderr
    assert policy.read_text() == "#!/bin/sh\n# the host's own\nexit 0\n"
    assert "policy=0" in (tmp_path / "seen").read_text()
