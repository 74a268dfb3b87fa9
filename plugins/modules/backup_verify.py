#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: backup_verify
short_description: Prove a backup by restoring it into a scratch instance and checking its data
version_added: "0.1.0"
description:
  - Verifies one backup, a pgBackRest set or a logical dump (by default the latest), on the host
    the task runs on, which must have pgBackRest configured for the stanza (the backup role does
    it, on the database host or a spare).
  - "Checks, each with its result and time: C(structure) (every WAL segment the set needs being
    in the archive, and in check mode also C(pgbackrest verify) of the set; for a dump, each file's
    size and sha256 against its manifest and C(pg_restore --list)); C(restore) (into a scratch
    PostgreSQL instance with its own data directory and a Unix socket in a private directory, each
    file compared with its checksum as it is restored, recovered to the restore point the data
    manifest was taken at, and waited for until recovery has finished);
    C(amcheck) (pg_amcheck on heap and btree, with heapallindexed); C(manifest) (every table's row
    count and content checksum against the manifest recorded at backup time); C(assertions) (the
    caller's SQL)."
  - The live cluster is never touched, not even connected to. The scratch instance listens on no
    TCP address, does not archive, and is stopped and deleted afterwards, including on failure.
  - A failed verification fails the task with the reason, unless O(fail_on_unverified=false).
  - Verification changes nothing on the managed system, so the task never reports changed.
options:
  kind:
    description: C(physical) for a pgBackRest set, C(logical) for a pg_dump backup.
    type: str
    choices: [physical, logical]
    default: physical
  backup:
    description:
      - C(latest), a backup label (physical, such as C(20240101-010000F)) or stamp (logical, such
        as C(20240101T031500Z)).
      - C(newest_verified) (physical) picks the newest backup that verifies, that is one whose
        recorded verification passed (with O(trust_records)), else the first of up to
        O(max_candidates), newest first, that passes verification now. This is how a DR restore
        chooses.
    type: str
    default: latest
  before:
    description: With O(backup=newest_verified), only backups that finished before this time
      (epoch seconds or ISO 8601), for a point-in-time restore.
    type: str
  stanza:
    description: pgBackRest stanza.
    type: str
    default: main
  repo:
    description: pgBackRest repository number holding the backup (and its manifest).
    type: int
    default: 1
  config:
    description: pgBackRest configuration file (repositories, credentials, passphrases).
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  scratch_dir:
    description: Directory under which the scratch instance is made (needs room for a restored copy).
    type: path
    default: /var/lib/postgresql/f4a-verify
  pg_bindir:
    description: PostgreSQL server binaries (initdb, pg_ctl, pg_amcheck, pg_restore).
    type: path
    default: /usr/lib/postgresql/15/bin
  assertions:
    description: SQL run on the restored copy; each must return true in its first column.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Shown in the result and in the reason of a failure.
        type: str
      sql:
        description: A query whose first row's first column must be true.
        type: str
        required: true
      database:
        description: Database to run it in (default the manifest's first database).
        type: str
  exclude:
    description: Tables (database.schema.table, shell wildcards) left out of the manifest comparison.
    type: list
    elements: str
    default: []
  require_manifest:
    description: Fail a physical backup that has no data manifest. Without one, the copy is
      recovered to consistency only and the manifest check is skipped.
    type: bool
    default: true
  record:
    description: Store the result beside the backup (C(f4a/<stanza>/verified/<label>.json) in the
      repository), where O(backup=newest_verified) and C(free4allweb-backup list) find it.
    type: bool
    default: false
  trust_records:
    description: With O(backup=newest_verified), accept a backup whose recorded verification passed.
    type: bool
    default: true
  max_candidates:
    description: With O(backup=newest_verified), how many backups to try to verify now.
    type: int
    default: 3
  process_max:
    description: pgBackRest processes for the restore.
    type: int
    default: 2
  jobs:
    description: Parallel jobs for pg_amcheck and pg_restore.
    type: int
    default: 2
  timeout:
    description: Seconds allowed for the restore and for recovery.
    type: int
    default: 3600
  fail_on_unverified:
    description: Fail the task when verification fails. Off, the result says why and the play goes on.
    type: bool
    default: true
attributes:
  check_mode:
    details: In check mode only the structural check runs (it only reads the repository); nothing
      is restored and no record is written.
notes:
  - Runs as root or as postgres; PostgreSQL and pgBackRest commands run as postgres.
  - Logical dumps of an encrypted repository are decrypted with that repository's cipher passphrase;
    so are the manifests and verification records stored beside the backups, which are written
    encrypted there (one stored in plaintext before that is still read, and checked the same way).
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Verify the latest backup of repo2 and record the result
  free4allweb.devops.backup_verify:
    stanza: main
    repo: 2
    record: true
    assertions:
      - name: the deployment record is there
        database: free4allweb_ops
        sql: SELECT count(*) > 0 FROM deployments

- name: Verify the latest logical dump
  free4allweb.devops.backup_verify:
    kind: logical
    repo: 2

- name: Choose the newest backup that verifies, for a restore
  free4allweb.devops.backup_verify:
    backup: newest_verified
    repo: 2
  register: chosen
"""

RETURN = r"""
verified:
  description: Whether every check that ran passed.
  returned: always
  type: bool
reason:
  description: Why verification failed (each failed check and its reason), empty when it passed.
  returned: always
  type: str
checks:
  description: Each check (structure, restore, amcheck, manifest, assertions) with C(ok) (true,
    false, or null when skipped), C(seconds), C(reason) and details.
  returned: always
  type: list
  elements: dict
phases:
  description: Seconds of each phase, each measured on its own - C(structure), C(restore) (the
    files), C(recovery) (physical backups), C(amcheck), C(manifest), C(assertions). amcheck and the
    manifest comparison run side by side, so their sum exceeds the wall time.
  returned: always
  type: dict
  sample: {"structure": 1.2, "restore": 1.8, "recovery": 0.7, "amcheck": 3.1, "manifest": 1.6, "assertions": 0.0}
backup:
  description: The backup verified (label, type, start and stop times, LSNs, WAL range, sizes).
  returned: when the backup was found
  type: dict
backup_age_seconds:
  description: Age of the backup (now minus its stop time), the RPO if it had to be restored now
    without WAL.
  returned: when the backup was found
  type: float
restore_seconds:
  description: Restore plus recovery until the copy accepted connections, a measurement of the RTO.
  returned: when the restore succeeded
  type: float
sizes:
  description: Bytes of the backup (C(backup)), in the repository (C(repository)) and restored (C(restored)).
  returned: when the backup was found
  type: dict
manifest:
  description: The data manifest's restore point, LSN, time, and its table and row counts.
  returned: when the backup has a manifest
  type: dict
seconds:
  description: Total time of the verification.
  returned: always
  type: float
selected:
  description: With backup=newest_verified, how the backup was chosen and the attempts made.
  returned: with backup=newest_verified
  type: dict
record_key:
  description: Key of the verification record written (record=true).
  returned: when a record was written
  type: str
"""

import datetime
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup import verify
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup.pgbackrest import (
        PgBackRest,
        PgBackRestError,
        read_config,
        repo_options,
    )
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup.runner import CommandFailed, Runner
    from ansible_collections.free4allweb.devops.plugins.module_utils.backup.store import StoreError, store_for
except ImportError:  # pragma: no cover
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None


def parse_time(value):
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main():
    module = AnsibleModule(
        argument_spec={
            "kind": {"type": "str", "choices": ["physical", "logical"], "default": "physical"},
            "backup": {"type": "str", "default": "latest"},
            "before": {"type": "str"},
            "stanza": {"type": "str", "default": "main"},
            "repo": {"type": "int", "default": 1},
            "config": {"type": "path", "default": "/etc/pgbackrest/pgbackrest.conf"},
            "scratch_dir": {"type": "path", "default": "/var/lib/postgresql/f4a-verify"},
            "pg_bindir": {"type": "path", "default": "/usr/lib/postgresql/15/bin"},
            "assertions": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str"},
                    "sql": {"type": "str", "required": True},
                    "database": {"type": "str"},
                },
            },
            "exclude": {"type": "list", "elements": "str", "default": []},
            "require_manifest": {"type": "bool", "default": True},
            "record": {"type": "bool", "default": False},
            "trust_records": {"type": "bool", "default": True},
            "max_candidates": {"type": "int", "default": 3},
            "process_max": {"type": "int", "default": 2},
            "jobs": {"type": "int", "default": 2},
            "timeout": {"type": "int", "default": 3600},
            "fail_on_unverified": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("free4allweb backup module_utils"), exception=IMPORT_ERROR)
    p = module.params
    runner = Runner()
    try:
        conf = read_config(p["config"])
        options = repo_options(conf, p["stanza"], p["repo"])
        runner.add_secret(options.get("cipher-pass"))
        store = store_for(options, runner)
        common = {
            "scratch_base": p["scratch_dir"],
            "bindir": p["pg_bindir"],
            "assertions": p["assertions"],
            "exclude": p["exclude"],
            "jobs": p["jobs"],
            "timeout": p["timeout"],
        }
        selected = None
        if p["kind"] == "logical":
            result = verify.verify_logical(
                store,
                runner,
                stanza=p["stanza"],
                stamp=p["backup"],
                passphrase=options.get("cipher-pass"),
                structural_only=module.check_mode,
                **common,
            )
            name = f"logical-{result.get('backup', {}).get('label', p['backup'])}"
        else:
            pgbr = PgBackRest(runner, p["stanza"], p["config"])
            physical = {
                **common,
                "require_manifest": p["require_manifest"],
                "process_max": p["process_max"],
                "structural_only": module.check_mode,
            }
            label = p["backup"]
            if label == "newest_verified":
                selected = verify.newest_verified(
                    pgbr,
                    store,
                    repo=p["repo"],
                    before=parse_time(p["before"]),
                    trust_records=p["trust_records"],
                    max_candidates=p["max_candidates"],
                    verify_kwargs=physical,
                )
                result = dict(selected.pop("record"))
                result.pop("recorded_at", None)
                selected["label"] = result.get("backup", {}).get("label")
            else:
                result = verify.verify_physical(pgbr, store, repo=p["repo"], label=label, **physical)
            name = result.get("backup", {}).get("label", label)
        if selected is not None:
            result["selected"] = selected
        if p["record"] and not module.check_mode and result.get("backup") and not selected:
            result["record_key"] = verify.record(store, p["stanza"], name, result)
    except (CommandFailed, PgBackRestError, StoreError, OSError, ValueError, KeyError) as exc:
        module.fail_json(msg=f"backup verification could not run: {runner_mask(runner, str(exc))}", verified=False)
    if not result["verified"] and p["fail_on_unverified"]:
        label = result.get("backup", {}).get("label", p["backup"])
        module.fail_json(msg=f"backup {label} did not verify: {result['reason']}", changed=False, **result)
    module.exit_json(changed=False, **result)


def runner_mask(runner, text):
    for secret in runner.secrets:
        text = text.replace(secret, "********")
    return text


if __name__ == "__main__":
    main()
