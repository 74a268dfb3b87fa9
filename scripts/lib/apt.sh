# shellcheck shell=bash
# apt on the host, for scripts/bootstrap: wait (bounded) for another apt or dpkg to finish, and
# keep packaged services from starting during the install, leaving the host's own policy as it
# was found. Sourced; tests/unit/test_bootstrap_apt.py runs these functions against stand-in
# lock files and a stand-in policy-rc.d.
#
#   apt_locks_wait SECONDS        0 when no apt/dpkg lock is held, at once or within SECONDS;
#                                 else 1, naming the lock and the process holding it
#   apt_install_held PACKAGE...   apt-get update + install, services held back, locks waited for

# The locks apt and dpkg take (fcntl record locks), and the policy file invoke-rc.d consults.
F4A_APT_LOCKS=${F4A_APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}
F4A_POLICY_RC=${F4A_POLICY_RC:-/usr/sbin/policy-rc.d}
F4A_APT_LOCK_WAIT=${F4A_APT_LOCK_WAIT:-600}

_apt_say() { if declare -F log >/dev/null; then log "$*"; else echo "==> $*" >&2; fi; }

# the first held lock and its holder as "PATH PID", or nothing (fcntl locks: what apt takes;
# flock(1) would not see them)
_apt_held_lock() {
  python3 - "$@" <<'PY'
import fcntl, os, struct, sys
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    with open(path, "rb") as fh:
        probe = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
        held = fcntl.fcntl(fh, fcntl.F_GETLK, probe)
        kind, _, _, _, pid = struct.unpack("hhqqi", held)
        if kind != fcntl.F_UNLCK:
            print(path, pid)
            break
PY
}

apt_locks_wait() {
  local limit=${1:-$F4A_APT_LOCK_WAIT} t0=$SECONDS held said=-1 pid what
  # shellcheck disable=SC2086
  while held=$(_apt_held_lock $F4A_APT_LOCKS) && [ -n "$held" ]; do
    pid=${held#* }
    what=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80 || true)
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      echo "apt is busy: ${held% *} is still held by process $pid (${what:-gone}) after ${limit} s;" \
        "let it finish, or set F4A_APT_LOCK_WAIT (seconds) to wait longer" >&2
      return 1
    fi
    if [ $(((SECONDS - t0) / 30)) -gt "$said" ]; then
      said=$(((SECONDS - t0) / 30))
      _apt_say "waiting for apt: ${held% *} is held by process $pid (${what:-?}); up to ${limit} s ($((SECONDS - t0)) s so far)"
    fi
    sleep 1
  done
}

apt_install_held() {
  local placed= rc=0
  apt_locks_wait || return 1
  # the host must not start the packaged services (PostgreSQL, nginx): the tests start their own
  # on 127.0.0.1. A policy the host already has is left alone; ours goes when the install ends.
  if [ ! -e "$F4A_POLICY_RC" ]; then
    printf '#!/bin/sh\n# scripts/bootstrap: no service starts during its install\nexit 101\n' >"$F4A_POLICY_RC"
    chmod +x "$F4A_POLICY_RC"
    placed=1
  fi
  # DPkg::Lock::Timeout: a lock taken between the wait above and apt's own start is waited for too
  DEBIAN_FRONTEND=noninteractive apt-get -q -o "DPkg::Lock::Timeout=$F4A_APT_LOCK_WAIT" update >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get -q -y -o "DPkg::Lock::Timeout=$F4A_APT_LOCK_WAIT" \
      --no-install-recommends install "$@" >/dev/null || rc=$?
  [ -z "$placed" ] || rm -f "$F4A_POLICY_RC"
  return $rc
}
