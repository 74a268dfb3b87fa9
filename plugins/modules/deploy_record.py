#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_record
short_description: Record deploys, rollbacks and their steps in PostgreSQL or Kubernetes
version_added: "0.1.0"
description:
  - Writes the deployment record, the durable history of every deploy and rollback (who, what,
    when, result, from which commit) and of each step inside one (health gate, switch, canary
    verdicts).
  - Both stores take the same states and return the same shapes, so playbooks only choose the
    store.
  - "O(store=postgresql): the tables C(deployments) and C(deployment_steps), created (or given
    the C(commit) column) when missing. Runs where it can reach the database, usually on the
    database host as the C(postgres) user over the local socket. Needs psycopg2 or psycopg 3 on
    that host."
  - "O(store=kubernetes): one ConfigMap per deploy or rollback in C(store_options.namespace), for
    platforms where the controller reaches the cluster's API but not the database (EKS with a
    private RDS). Run it where the API and credentials are (usually the controller). The
    ConfigMap is named C(free4allweb-record-<id>), the id being the milliseconds since the
    epoch when the deployment was opened (the next free one on a clash). Its labels are
    C(app.kubernetes.io/managed-by=free4allweb), C(free4allweb.io/record=deployment),
    C(free4allweb.io/environment), C(free4allweb.io/kind) and C(free4allweb.io/result); its
    data C(deployment.json) (the fields of a C(deployments) row) and C(steps.json) (the list of
    its steps; step ids count from 1 within the deployment). Updates are conditional on the
    resourceVersion read and retried on a conflict. The namespace is created if it does not
    exist yet. Needs the Python C(kubernetes) client. The environment must be a valid label
    value."
options:
  store:
    description: Where the record lives.
    type: str
    choices: [postgresql, kubernetes]
    default: postgresql
  store_options:
    description:
      - Options of the store. Unknown or missing ones fail the task, naming the option.
      - For C(postgresql) - none (use O(database) and the C(login_*) options).
      - For C(kubernetes) - C(namespace) (required), C(kubeconfig), C(context) (default
        kubeconfig, else the in-cluster service account), C(request_timeout) (seconds per API
        call, default 10).
    type: dict
    default: {}
  state:
    description:
      - C(started) opens a deployment and returns its id.
      - C(step) adds a step to an open deployment.
      - C(finished) closes it with a result.
      - C(latest) reads the newest deployment of the environment.
    type: str
    choices: [started, step, finished, latest]
    required: true
  database:
    description: Database holding the record (O(store=postgresql)).
    type: str
    default: free4allweb_ops
  login_host:
    description: Host or socket directory.
    type: str
    default: /var/run/postgresql
  login_port:
    description: Port.
    type: int
    default: 5432
  login_user:
    description: Role to connect as (peer authentication over the socket by default).
    type: str
    default: postgres
  login_password:
    description: Password, when not using peer authentication.
    type: str
  id:
    description: Deployment id, for O(state=step) and O(state=finished).
    type: int
  environment:
    description: Environment name (local, dev, staging, production).
    type: str
  platform:
    description: hosts, kubernetes or aws.
    type: str
    default: hosts
  kind:
    description: What happened.
    type: str
    choices: [deploy, rollback]
    default: deploy
  strategy:
    description: blue_green or canary.
    type: str
  version:
    description: Version going live.
    type: str
  previous_version:
    description: Version that was live before.
    type: str
  from_colour:
    description: Colour traffic leaves.
    type: str
  to_colour:
    description: Colour traffic goes to.
    type: str
  operator:
    description: Who ran it (AWX user, or the local user).
    type: str
    default: unknown
  run_id:
    description: Identifier of the Ansible run.
    type: str
  commit:
    description: The git commit the deploying checkout is at, for O(state=started).
    type: str
  step:
    description: Step name, for O(state=step).
    type: str
  result:
    description: Result of the step or of the deployment.
    type: str
  summary:
    description: Human-readable summary, for O(state=finished).
    type: str
  details:
    description: Any structured detail (timings, verdicts); merged into the record.
    type: dict
    default: {}
requirements:
  - psycopg2 or psycopg 3, for O(store=postgresql).
  - The Python C(kubernetes) client, for O(store=kubernetes).
attributes:
  check_mode:
    details: In check mode nothing is written; O(state=latest) still reads.
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Open the deployment record
  free4allweb.devops.deploy_record:
    state: started
    environment: production
    version: 1.4.0
    previous_version: 1.3.2
    from_colour: blue
    to_colour: green
    strategy: blue_green
    operator: "{{ deploy_operator }}"
  become: true
  become_user: postgres
  delegate_to: "{{ groups['db'][0] }}"
  register: record

- name: Record the deployment as succeeded
  free4allweb.devops.deploy_record:
    state: finished
    id: "{{ record.deployment.id }}"
    result: succeeded
    summary: green serves 1.4.0

- name: Open the record of a Kubernetes deploy, in the cluster itself
  free4allweb.devops.deploy_record:
    store: kubernetes
    store_options:
      namespace: free4allweb-production
    state: started
    environment: production
    platform: kubernetes
    version: 1.4.0
    commit: "{{ lookup('pipe', 'git rev-parse HEAD') }}"
    operator: "{{ deploy_operator }}"
  delegate_to: localhost
  register: record

- name: Add a step
  free4allweb.devops.deploy_record:
    store: kubernetes
    store_options: {namespace: free4allweb-production}
    state: step
    id: "{{ record.deployment.id }}"
    step: switch
    result: ok
    details: {apply_seconds: 0.02}
  delegate_to: localhost

- name: The newest deployment of production, with its steps
  free4allweb.devops.deploy_record:
    store: kubernetes
    store_options: {namespace: free4allweb-production}
    state: latest
    environment: production
  delegate_to: localhost
  register: newest
"""

RETURN = r"""
deployment:
  description: The deployment after the task, the same fields in both stores.
  returned: state is started, finished or latest (null when there is none, and in check mode
    for started and finished)
  type: dict
  contains:
    id:
      description: "Deployment id (a bigserial in PostgreSQL; milliseconds since the epoch in Kubernetes)."
      type: int
    environment:
      description: "Environment."
      type: str
    platform:
      description: "hosts, kubernetes or aws."
      type: str
    kind:
      description: "deploy or rollback."
      type: str
    strategy:
      description: "blue_green or canary."
      type: str
    version:
      description: "Version going live."
      type: str
    previous_version:
      description: "Version live before."
      type: str
    from_colour:
      description: "Colour traffic left."
      type: str
    to_colour:
      description: "Colour traffic went to."
      type: str
    operator:
      description: "Who ran it."
      type: str
    run_id:
      description: "The Ansible run."
      type: str
    commit:
      description: "Git commit of the deploying checkout."
      type: str
    started_at:
      description: "ISO 8601 time with offset."
      type: str
    finished_at:
      description: "ISO 8601 time with offset; null while running."
      type: str
    result:
      description: "running, succeeded, failed or noop."
      type: str
    message:
      description: "The summary given when finished."
      type: str
    details:
      description: "Structured details, merged over the run."
      type: dict
  sample: {id: 42, environment: production, kind: deploy, version: 1.4.0, result: succeeded, commit: 3f2c1e9}
step:
  description: The step written.
  returned: state=step
  type: dict
  contains:
    id:
      description: "Step id (unique in PostgreSQL; 1, 2, ... within the deployment in Kubernetes)."
      type: int
    deployment_id:
      description: "Its deployment."
      type: int
    at:
      description: "ISO 8601 time with offset."
      type: str
    step:
      description: "Step name."
      type: str
    result:
      description: "Step result."
      type: str
    details:
      description: "Structured details."
      type: dict
steps:
  description: The steps of the deployment returned, oldest first (same keys as RV(step)).
  returned: state=latest (empty when there is no deployment)
  type: list
  elements: dict
namespace_created:
  description: Whether the kubernetes store created its namespace.
  returned: store=kubernetes and state=started, not in check mode
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_record, k8s_rest

try:
    import psycopg2 as driver

    HAS_DRIVER = True
except ImportError:
    try:
        import psycopg as driver

        HAS_DRIVER = True
    except ImportError:
        HAS_DRIVER = False


STORE_OPTIONS = {
    "postgresql": {},
    "kubernetes": {
        "namespace": {"type": "str", "required": True},
        "kubeconfig": {"type": "path"},
        "context": {"type": "str"},
        "request_timeout": {"type": "float", "default": k8s_rest.DEFAULT_TIMEOUT},
    },
}


def store_options(module) -> dict:
    """The store's options, validated; fails naming the option that is wrong."""
    p = module.params
    spec = STORE_OPTIONS[p["store"]]
    unknown = sorted(set(p["store_options"]) - set(spec))
    if unknown:
        takes = f"it takes {', '.join(sorted(spec))}" if spec else "it takes none: use database and login_*"
        module.fail_json(
            msg=f"invalid store_options for the {p['store']} store: unknown "
            + ", ".join(f"store_options.{k}" for k in unknown)
            + f" ({takes})"
        )
    checked = ArgumentSpecValidator(spec).validate(p["store_options"])
    if checked.error_messages:
        module.fail_json(
            msg=f"invalid store_options for the {p['store']} store: "
            + "; ".join(m.replace("arguments: ", "arguments: store_options.") for m in checked.error_messages)
        )
    opts = checked.validated_parameters
    if p["store"] == "kubernetes":
        if not k8s_rest.DNS_LABEL.match(opts["namespace"]):
            module.fail_json(msg=f"store_options.namespace {opts['namespace']!r} is not a valid namespace name")
        if opts["request_timeout"] <= 0:
            module.fail_json(msg="store_options.request_timeout must be positive")
    return opts


def open_store(module, opts):
    p = module.params
    if p["store"] == "kubernetes":
        try:
            client = k8s_rest.Client(
                kubeconfig=opts["kubeconfig"],
                context=opts["context"],
                timeout=opts["request_timeout"],
                purpose="deploy_record with store kubernetes",
            )
        except k8s_rest.K8sError as exc:
            module.fail_json(msg=str(exc))
        return deploy_record.ConfigMapStore(client, opts["namespace"])
    if not HAS_DRIVER:
        module.fail_json(msg="deploy_record needs psycopg2 or psycopg on the host it runs on (python3-psycopg2)")
    conninfo = {
        "dbname": p["database"],
        "host": p["login_host"],
        "port": p["login_port"],
        "user": p["login_user"],
        "connect_timeout": 10,
        "application_name": "free4allweb.devops.deploy_record",
    }
    if p["login_password"]:
        conninfo["password"] = p["login_password"]
    try:
        conn = driver.connect(**conninfo)
    except Exception as exc:
        module.fail_json(msg=f"cannot reach the deployment record database {p['database']!r}: {exc}")
    return deploy_record.PostgresStore(conn)


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["started", "step", "finished", "latest"]},
            "store": {"type": "str", "choices": ["postgresql", "kubernetes"], "default": "postgresql"},
            "store_options": {"type": "dict", "default": {}},
            "database": {"type": "str", "default": "free4allweb_ops"},
            "login_host": {"type": "str", "default": "/var/run/postgresql"},
            "login_port": {"type": "int", "default": 5432},
            "login_user": {"type": "str", "default": "postgres"},
            "login_password": {"type": "str", "no_log": True},
            "id": {"type": "int"},
            "environment": {"type": "str"},
            "platform": {"type": "str", "default": "hosts"},
            "kind": {"type": "str", "choices": ["deploy", "rollback"], "default": "deploy"},
            "strategy": {"type": "str"},
            "version": {"type": "str"},
            "previous_version": {"type": "str"},
            "from_colour": {"type": "str"},
            "to_colour": {"type": "str"},
            "operator": {"type": "str", "default": "unknown"},
            "run_id": {"type": "str"},
            "commit": {"type": "str"},
            "step": {"type": "str"},
            "result": {"type": "str"},
            "summary": {"type": "str"},
            "details": {"type": "dict", "default": {}},
        },
        required_if=[
            ("state", "started", ["environment", "version"]),
            ("state", "step", ["id", "step", "result"]),
            ("state", "finished", ["id", "result"]),
            ("state", "latest", ["environment"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    opts = store_options(module)
    if module.check_mode and p["state"] != "latest":
        module.exit_json(changed=True, deployment=None)

    store = open_store(module, opts)
    kube = p["store"] == "kubernetes"
    try:
        store.ensure()
        if p["state"] == "started":
            row = store.start(
                environment=p["environment"],
                platform=p["platform"],
                kind=p["kind"],
                strategy=p["strategy"],
                version=p["version"],
                previous_version=p["previous_version"],
                from_colour=p["from_colour"],
                to_colour=p["to_colour"],
                operator=p["operator"],
                run_id=p["run_id"],
                details=p["details"],
                commit=p["commit"],
            )
            extra = {"namespace_created": store.created_namespace} if kube else {}
            module.exit_json(changed=True, deployment=row, **extra)
        if p["state"] == "step":
            row = store.add_step(p["id"], p["step"], p["result"], p["details"])
            module.exit_json(changed=True, step=row)
        if p["state"] == "finished":
            out = store.finish(p["id"], p["result"], p["summary"], p["details"])
            module.exit_json(changed=out["changed"], deployment=out["deployment"])
        row = store.latest(p["environment"])
        module.exit_json(changed=False, deployment=row, steps=store.steps(row["id"]) if row else [])
    except deploy_record.RecordError as exc:
        module.fail_json(msg=str(exc))
    finally:
        store.close()


if __name__ == "__main__":
    main()
