#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_record
short_description: Record deploys, rollbacks and their steps in PostgreSQL
version_added: "0.1.0"
description:
  - Writes the deployment record, the durable history of every deploy and rollback (who, what,
    when, result) and of each step inside one (health gate, switch, canary verdicts).
  - Creates its two tables, C(deployments) and C(deployment_steps), when they are missing.
  - Runs where it can reach the database, usually on the database host as the C(postgres) user
    over the local socket. Needs psycopg2 or psycopg 3 on that host.
options:
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
    description: Database holding the record.
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
"""

RETURN = r"""
deployment:
  description: The deployment row after the task.
  returned: state is started, finished or latest (null when there is none)
  type: dict
  sample: {id: 42, environment: production, kind: deploy, version: 1.4.0, result: succeeded}
step:
  description: The step row written.
  returned: state=step
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_record

try:
    import psycopg2 as driver

    HAS_DRIVER = True
except ImportError:
    try:
        import psycopg as driver

        HAS_DRIVER = True
    except ImportError:
        HAS_DRIVER = False


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["started", "step", "finished", "latest"]},
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
    if not HAS_DRIVER:
        module.fail_json(msg="deploy_record needs psycopg2 or psycopg on the host it runs on (python3-psycopg2)")
    p = module.params
    if module.check_mode and p["state"] != "latest":
        module.exit_json(changed=True, deployment=None)

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
    try:
        deploy_record.ensure_schema(conn)
        if p["state"] == "started":
            row = deploy_record.start(
                conn,
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
            )
            module.exit_json(changed=True, deployment=row)
        if p["state"] == "step":
            row = deploy_record.add_step(conn, p["id"], p["step"], p["result"], p["details"])
            module.exit_json(changed=True, step=row)
        if p["state"] == "finished":
            out = deploy_record.finish(conn, p["id"], p["result"], p["summary"], p["details"])
            module.exit_json(changed=out["changed"], deployment=out["deployment"])
        module.exit_json(changed=False, deployment=deploy_record.latest(conn, p["environment"]))
    except deploy_record.RecordError as exc:
        module.fail_json(msg=str(exc))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
