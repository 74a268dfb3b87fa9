#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the deploy lock of an environment
version_added: "0.1.0"
description:
  - Keeps two deploy or rollback runs against one environment from interleaving.
  - The lock is a file on the host the task runs on (the load balancer host in the playbooks),
    created atomically. It records the holder, the purpose and an expiry time.
  - A second run waits up to O(timeout) seconds, then fails with a message naming the holder.
  - A lock left by a run that died is broken once it has expired (O(ttl)).
  - Taking and releasing the lock is bookkeeping of a run, not a change to the managed system, so
    the task never reports changed.
options:
  path:
    description: Lock file.
    type: path
    default: /var/lib/free4allweb/deploy.lock
  state:
    description: C(acquired) takes the lock (waiting for it), C(released) gives it back,
      C(query) only reports the holder.
    type: str
    choices: [acquired, released, query]
    default: acquired
  token:
    description: Identifies the run. Re-taking with the same token succeeds at once; only that
      token can release.
    type: str
  owner:
    description: Who runs it, shown to anyone who has to wait.
    type: str
    default: unknown
  purpose:
    description: What the run does, shown to anyone who has to wait.
    type: str
    default: deploy
  ttl:
    description: Seconds after which a held lock counts as abandoned.
    type: float
    default: 1800
  timeout:
    description: Seconds to wait for a held lock before failing.
    type: float
    default: 300
attributes:
  check_mode:
    details: In check mode the lock is not taken; the task reports whether it is free.
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Take the deploy lock
  free4allweb.devops.deploy_lock:
    token: "{{ deploy_run_id }}"
    owner: "{{ deploy_operator }}"
    purpose: "deploy {{ app_version }}"
    timeout: 600

- name: Release the deploy lock
  free4allweb.devops.deploy_lock:
    state: released
    token: "{{ deploy_run_id }}"
"""

RETURN = r"""
holder:
  description: The lock as held after the task (or before it, for released and query).
  returned: when a lock is held
  type: dict
  contains:
    token: {description: Run that holds it., type: str}
    owner: {description: Who., type: str}
    purpose: {description: What for., type: str}
    acquired_at: {description: Epoch seconds., type: float}
    expires_at: {description: Epoch seconds., type: float}
    host: {description: Host the lock lives on., type: str}
waited:
  description: Seconds spent waiting for the lock.
  returned: state=acquired
  type: float
broke_expired:
  description: The expired lock that was broken to take this one, if any.
  returned: state=acquired
  type: dict
released:
  description: Whether this task released a lock.
  returned: state=released
  type: bool
"""

import time
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_lock


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/free4allweb/deploy.lock"},
            "state": {"type": "str", "choices": ["acquired", "released", "query"], "default": "acquired"},
            "token": {"type": "str", "no_log": False},
            "owner": {"type": "str", "default": "unknown"},
            "purpose": {"type": "str", "default": "deploy"},
            "ttl": {"type": "float", "default": 1800.0},
            "timeout": {"type": "float", "default": 300.0},
        },
        required_if=[("state", "acquired", ["token"]), ("state", "released", ["token"])],
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "query" or (module.check_mode and p["state"] == "acquired"):
        holder = deploy_lock.status(p["path"])
        if holder and holder.expires_at <= time.time():
            holder = None
        module.exit_json(changed=False, holder=asdict(holder) if holder else None, free=holder is None)
    if module.check_mode:  # released, in check mode
        holder = deploy_lock.status(p["path"])
        module.exit_json(changed=False, released=bool(holder and holder.token == p["token"]))
    try:
        if p["state"] == "acquired":
            got = deploy_lock.acquire(
                p["path"], p["token"], p["owner"], p["purpose"], ttl=p["ttl"], timeout=p["timeout"]
            )
            module.exit_json(
                changed=False,
                holder=asdict(got["acquired"]),
                waited=round(got["waited"], 3),
                broke_expired=asdict(got["broke"]) if got["broke"] else None,
            )
        out = deploy_lock.release(p["path"], p["token"])
        holder = asdict(out["holder"]) if out["holder"] else None
        module.exit_json(changed=False, released=out["released"], holder=holder)
    except (deploy_lock.LockBusy, deploy_lock.LockNotOwned) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
