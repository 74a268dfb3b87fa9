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
  - The lock records the holder (a run token), who runs it, the purpose and an expiry time.
  - A second run waits up to O(timeout) seconds, then fails with a message naming the holder, the
    same for every backend, for example C(deploy lock /var/lib/free4allweb/deploy.lock is held by
    'alice' for 'deploy 2.0.0' since 2026-12-02T18:00:00Z (42 s ago, expires in 1758 s); waited 300 s
    (timeout 300 s)).
  - A lock left by a run that died is taken over once it has expired (O(ttl)).
  - "O(backend=file): a file on the host the task runs on (the load balancer host in the hosts
    playbooks), created atomically (O_EXCL, under flock on a guard file beside it)."
  - "O(backend=kubernetes): a C(coordination.k8s.io/v1) Lease, for Kubernetes and EKS where the
    controller always reaches the cluster's API. Run the task where the API and credentials are
    (usually the controller). The Lease is taken by compare-and-swap on the API server: created
    (refused with 409 when it exists), taken over when expired by an update carrying its
    resourceVersion, released by a delete with uid and resourceVersion preconditions, so of two
    runs racing exactly one wins. C(holderIdentity) is O(token), C(leaseDurationSeconds) is
    O(ttl) rounded up to whole seconds, C(acquireTime)/C(renewTime) when it was taken; the
    owner, purpose and host are the annotations C(free4allweb.io/owner), C(free4allweb.io/purpose)
    and C(free4allweb.io/host). If the namespace does not exist yet (a first deploy into a fresh
    namespace), the module creates it (labelled C(app.kubernetes.io/managed-by=free4allweb)).
    Every API call has a time limit (C(request_timeout)); waiting polls once a second."
  - Expiry is judged by the clock of the host the task runs on; hosts that deploy need roughly
    synchronised clocks.
  - Taking and releasing the lock is bookkeeping of a run, not a change to the managed system, so
    the task never reports changed.
options:
  backend:
    description: Where the lock lives.
    type: str
    choices: [file, kubernetes]
    default: file
  options:
    description:
      - Backend options. Unknown or missing ones fail the task, naming the option.
      - For C(file) - C(path) (lock file, default C(/var/lib/free4allweb/deploy.lock); the
        top-level O(path) still works).
      - For C(kubernetes) - C(namespace) (required), C(name) (the Lease, default
        C(free4allweb-deploy)), C(kubeconfig), C(context) (default kubeconfig, else the
        in-cluster service account), C(request_timeout) (seconds per API call, default 10).
    type: dict
    default: {}
  path:
    description:
      - Lock file, for O(backend=file). Same as C(options.path); give one of them.
      - Defaults to C(/var/lib/free4allweb/deploy.lock).
    type: path
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
    description: Seconds after which a held lock counts as abandoned (whole seconds, at least 1,
      for the kubernetes backend).
    type: float
    default: 1800
  timeout:
    description: Seconds to wait for a held lock before failing.
    type: float
    default: 300
requirements:
  - The Python C(kubernetes) client, for O(backend=kubernetes).
attributes:
  check_mode:
    details: In check mode the lock is neither taken nor released (nor a namespace created); the
      task reports whether it is free, or whether it would be released.
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

- name: Take the deploy lock of a Kubernetes environment (a Lease in its namespace)
  free4allweb.devops.deploy_lock:
    backend: kubernetes
    options:
      namespace: free4allweb-production
      context: production
    token: "{{ deploy_run_id }}"
    owner: "{{ deploy_operator }}"
    purpose: "deploy {{ app_version }}"
  delegate_to: localhost

- name: Who holds it?
  free4allweb.devops.deploy_lock:
    backend: kubernetes
    options: {namespace: free4allweb-production}
    state: query
  delegate_to: localhost
  register: lock
"""

RETURN = r"""
holder:
  description: The lock as held after the task (or before it, for released and query).
  returned: when a lock is held (null otherwise)
  type: dict
  contains:
    token:
      description: "Run that holds it."
      type: str
    owner:
      description: "Who."
      type: str
    purpose:
      description: "What for."
      type: str
    acquired_at:
      description: "Epoch seconds."
      type: float
    expires_at:
      description: "Epoch seconds."
      type: float
    host:
      description: "Host the lock was taken from (the file's host, or the host that took the Lease)."
      type: str
  sample: {token: run-42, owner: alice, purpose: deploy 2.0.0, acquired_at: 1795900000.12,
           expires_at: 1795901800.12, host: ctl1}
lock:
  description: Where the lock lives, as named in messages (the file path, or C(Lease namespace/name)).
  returned: always
  type: str
  sample: Lease free4allweb-production/free4allweb-deploy
free:
  description: Whether nobody holds the lock (an expired lock counts as free).
  returned: state=query, and state=acquired in check mode
  type: bool
waited:
  description: Seconds spent waiting for the lock.
  returned: state=acquired
  type: float
broke_expired:
  description: The expired lock that was taken over to take this one, if any (same keys as RV(holder)).
  returned: state=acquired
  type: dict
released:
  description: Whether this task released a lock (would release, in check mode).
  returned: state=released
  type: bool
namespace_created:
  description: Whether the kubernetes backend created the namespace of the Lease.
  returned: backend=kubernetes and state=acquired, not in check mode
  type: bool
"""

import time
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_lock, k8s_rest

BACKEND_OPTIONS = {
    "file": {"path": {"type": "path"}},
    "kubernetes": {
        "namespace": {"type": "str", "required": True},
        "name": {"type": "str", "default": deploy_lock.DEFAULT_LEASE},
        "kubeconfig": {"type": "path"},
        "context": {"type": "str"},
        "request_timeout": {"type": "float", "default": k8s_rest.DEFAULT_TIMEOUT},
    },
}


def backend_options(module):
    """The backend's options, validated; fails naming the option that is wrong."""
    p = module.params
    spec = BACKEND_OPTIONS[p["backend"]]
    unknown = sorted(set(p["options"]) - set(spec))
    if unknown:
        module.fail_json(
            msg=f"invalid options for the {p['backend']} backend: unknown "
            + ", ".join(f"options.{k}" for k in unknown)
            + f" (it takes {', '.join(sorted(spec))})"
        )
    checked = ArgumentSpecValidator(spec).validate(p["options"])
    if checked.error_messages:
        module.fail_json(
            msg=f"invalid options for the {p['backend']} backend: "
            + "; ".join(m.replace("arguments: ", "arguments: options.") for m in checked.error_messages)
        )
    opts = checked.validated_parameters
    if p["backend"] == "file":
        if opts["path"] and p["path"] and opts["path"] != p["path"]:
            module.fail_json(msg="give the lock file once: options.path or path, not both")
        opts["path"] = opts["path"] or p["path"] or deploy_lock.DEFAULT_PATH
        return opts
    if p["path"]:
        module.fail_json(
            msg="path is for the file backend; the kubernetes backend takes options.namespace and options.name"
        )
    if not k8s_rest.DNS_LABEL.match(opts["namespace"]):
        module.fail_json(msg=f"options.namespace {opts['namespace']!r} is not a valid namespace name (a DNS label)")
    if not k8s_rest.DNS_SUBDOMAIN.match(opts["name"]):
        module.fail_json(msg=f"options.name {opts['name']!r} is not a valid Lease name (a DNS subdomain)")
    if opts["request_timeout"] <= 0:
        module.fail_json(msg="options.request_timeout must be positive")
    return opts


def open_store(module, opts):
    if module.params["backend"] == "file":
        return deploy_lock.FileStore(opts["path"])
    try:
        client = k8s_rest.Client(
            kubeconfig=opts["kubeconfig"],
            context=opts["context"],
            timeout=opts["request_timeout"],
            purpose="deploy_lock with backend kubernetes",
        )
    except k8s_rest.K8sError as exc:
        module.fail_json(msg=str(exc))
    return deploy_lock.LeaseStore(client, opts["namespace"], opts["name"])


def main():
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "choices": ["file", "kubernetes"], "default": "file"},
            "options": {"type": "dict", "default": {}},
            "path": {"type": "path"},
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
    store = open_store(module, backend_options(module))
    where = {"lock": store.where}
    try:
        if p["state"] == "query" or (module.check_mode and p["state"] == "acquired"):
            holder = deploy_lock.status(store)
            if holder and holder.expires_at <= time.time():
                holder = None
            module.exit_json(changed=False, holder=asdict(holder) if holder else None, free=holder is None, **where)
        if module.check_mode:  # released, in check mode
            holder = deploy_lock.status(store)
            module.exit_json(changed=False, released=bool(holder and holder.token == p["token"]), **where)
        if p["state"] == "acquired":
            got = deploy_lock.acquire(store, p["token"], p["owner"], p["purpose"], ttl=p["ttl"], timeout=p["timeout"])
            extra = {"namespace_created": store.created_namespace} if p["backend"] == "kubernetes" else {}
            module.exit_json(
                changed=False,
                holder=asdict(got["acquired"]),
                waited=round(got["waited"], 3),
                broke_expired=asdict(got["broke"]) if got["broke"] else None,
                **where,
                **extra,
            )
        out = deploy_lock.release(store, p["token"])
        holder = asdict(out["holder"]) if out["holder"] else None
        module.exit_json(changed=False, released=out["released"], holder=holder, **where)
    except (deploy_lock.LockBusy, deploy_lock.LockNotOwned, deploy_lock.LockError, k8s_rest.K8sError) as exc:
        module.fail_json(msg=str(exc), **where)
    finally:
        store.close()


if __name__ == "__main__":
    main()
