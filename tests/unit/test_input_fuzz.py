"""A fuzz of bad inputs over every role's argument spec and every playbook request spec.

For each entry point the generator starts from a valid baseline (each option's default, else its
`example`), checks that the baseline is accepted, then derives bad cases from the spec and its
constraints (meta/constraints.yml, or a request option's `check`): a required option missing or
empty, a value of the wrong type, a choice that is not offered, a number just outside its range,
values of the wrong format, a list whose items break their check, a field of a dict out of range,
and each rule across variables broken. Every case must be rejected, and the message must name the
variable. The checks run in-process through the same code the roles' first task and check_request
run (plugins/module_utils/inputs.py); test_every_role_checks_its_inputs_first and
test_a_role_run_in_check_mode_stops_at_its_inputs show the roles really call it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.free4allweb.devops.plugins.module_utils import inputs

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
REQUESTS = sorted((ROOT / "playbooks" / "vars").glob("*_request.yml"))

# bad values per format, by the option's type
BAD_FORMAT = {
    "port": [0, 70000, -1],
    "cidr": ["10.0.0.0/33", "10.0.0.1/16", "ten"],
    "ip": ["300.1.1.1", "host"],
    "host": ["bad host", "-x-", ""],
    "bind_address": ["everywhere", "300.0.0.1"],
    "dns_label": ["Bad_NS", "-x", "a" * 64, ""],
    "dns_name": ["Bad_Name.example", "a..b", ""],
    "version": ["../../etc", "latest", "1.0+local", ""],
    "url": ["not a url", "ftp://x.example", "http://", "webhook"],
    "duration": ["soon", "10", "-5s", ""],
    "aws_region": ["mars-1", "eu-west", ""],
    "aws_zone": ["mars-1a", "eu-west-1"],
    "absolute_path": ["relative/path", "/a/../etc", ""],
    "path": ["../up", ""],
    "unix_name": ["Root User", "1abc", ""],
    "s3_bucket": ["Bad_Bucket", "ab", ""],
    "pg_identifier": ["Drop Table", "1x", ""],
    "rds_window": ["25:00-26:00", "03:00"],
    "rds_weekly_window": ["someday:04:00-sun:05:00", "sun:04:00"],
}
NASTY = ["../../etc", "bad value!", "-", "", "x" * 300]
WRONG_TYPE = {"int": "soon", "float": "soon", "bool": "maybe", "dict": "not-a-dict", "list": {"a": 1}}


def role_entry_points():
    for role in ROLES:
        for entry, (spec, constraints) in inputs.load_role(str(role)).items():
            yield f"{role.name}:{entry}", spec, constraints


def request_entry_points():
    for path in REQUESTS:
        spec, constraints = inputs.split_request_spec(yaml.safe_load(path.read_text()))
        yield path.stem, spec, constraints


ENTRY_POINTS = [*role_entry_points(), *request_entry_points()]
BY_NAME = {entry: (spec, constraints) for entry, spec, constraints in ENTRY_POINTS}


def templated(value) -> bool:
    return "{{" in json.dumps(value, default=str)


def baseline(spec: dict) -> dict:
    """A valid value for every option that has a default or an example (untemplated)."""
    out = {}
    for name, option in spec.items():
        for key in ("example", "default"):
            if key in option and option[key] is not None and not templated(option[key]):
                out[name] = copy.deepcopy(option[key])
                break
    return out


def bad_values(option: dict, check: dict) -> list:
    """Bad values for one option (or a list item / dict field) from its spec and check."""
    kind = option.get("type", "str")
    out = []
    if kind in WRONG_TYPE:
        out.append(WRONG_TYPE[kind])
    if option.get("choices"):
        out.append(999 if kind == "int" else "no-such-choice")
    if "min" in check:
        out.append(check["min"] - (1 if kind == "int" else 0.5))
    if "max" in check:
        out.append(check["max"] + (1 if kind == "int" else 0.5))
    if check.get("min_length"):
        out.append({"list": [], "dict": {}}.get(kind, ""))
    if "format" in check:
        samples = BAD_FORMAT[check["format"]]
        out += [v for v in samples if isinstance(v, int) == (kind == "int")]
    if "pattern" in check:
        out += [v for v in NASTY if inputs.check_value("x", v, {"pattern": check["pattern"]}) != []][:2]
    if "equals" in check:
        out.append(not check["equals"] if isinstance(check["equals"], bool) else "something-else")
    if "not_in" in check:
        out.append(check["not_in"][0])
    if check.get("or_empty"):
        out = [v for v in out if v != ""]
    return out


def cases_for(entry: str, spec: dict, constraints: dict):
    """(case id, variable named, values) for every bad case of one entry point."""
    base = baseline(spec)
    checks = constraints.get("options") or {}
    for name, option in spec.items():
        check = checks.get(name) or {}
        if option.get("required"):
            values = {k: v for k, v in base.items() if k != name}
            yield f"{entry}:{name}:missing", name, values
        for i, bad in enumerate(bad_values(option, check)):
            yield f"{entry}:{name}:bad{i}={bad!r:.30}", name, {**base, name: bad}
        kind = option.get("type", "str")
        # list items: a one-item list holding a bad item (or a good one with a bad field)
        if kind == "list" and ("items" in check or option.get("elements") in ("int", "dict")):
            item_check = check.get("items") or {}
            item_option = {"type": option.get("elements", "str"), "choices": option.get("choices")}
            good_items = base.get(name) or []
            for i, bad in enumerate(bad_values(item_option, item_check)):
                if bad in ([], {}, ""):
                    continue
                yield f"{entry}:{name}:item{i}={bad!r:.30}", name, {**base, name: [bad]}
            fields = item_check.get("fields") or {}
            if good_items and isinstance(good_items[0], dict):
                sub = option.get("options") or {}
                for field, field_check in fields.items():
                    for i, bad in enumerate(bad_values(sub.get(field) or {}, field_check)):
                        item = {**good_items[0], field: bad}
                        yield f"{entry}:{name}[0].{field}:bad{i}", name, {**base, name: [item, *good_items[1:]]}
            if check.get("ascending") and len(good_items) > 1:
                yield f"{entry}:{name}:descending", name, {**base, name: list(reversed(good_items))}
        if kind == "dict":
            sub = option.get("options") or {}
            for field, field_check in (check.get("fields") or {}).items():
                for i, bad in enumerate(bad_values(sub.get(field) or {}, field_check)):
                    if bad in ([], {}, ""):
                        continue
                    yield f"{entry}:{name}.{field}:bad{i}", name, {**base, name: {**(base.get(name) or {}), field: bad}}
    for i, rule in enumerate(constraints.get("rules") or []):
        broken = break_rule(rule, base)
        if broken:
            named, values = broken
            yield f"{entry}:rule{i}", named, values


def set_path(values: dict, path: str, value) -> dict:
    out = copy.deepcopy(values)
    parts = path.split(".")
    current = out
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value
    return out


def break_rule(rule: dict, base: dict):
    """(a variable the message must name, values breaking `rule`), or None."""
    if "at_most" in rule or "less_than" in rule:
        low, high = rule.get("at_most") or rule.get("less_than")
        if isinstance(base.get(high), (int, float)):
            return low, {**base, low: base[high] + 1}
    if "distinct" in rule:
        a, b = rule["distinct"][:2]
        if base.get(a) is not None:
            return b, {**base, b: base[a]}
    if "windows_disjoint" in rule:
        a, b = rule["windows_disjoint"]
        return b, {**base, a: "sun:04:00-sun:05:00", b: "sun:04:30-sun:05:30"}
    if "zones_in_region" in rule:
        zones, region = rule["zones_in_region"]
        other = "us-east-1" if base.get(region) != "us-east-1" else "eu-west-1"
        return zones, {**base, zones: [f"{other}a", f"{other}b"]}
    if "when" in rule:
        values = base
        for path, wanted in rule["when"].items():
            values = set_path(values, path, wanted)
        for path, check in rule["then"].items():
            bad = bad_values({"type": "bool" if isinstance(check.get("equals"), bool) else "int"}, check)
            bad = [b for b in bad if b not in ("maybe", "soon")]
            if bad:
                return path.split(".")[0], set_path(values, path, bad[0])
    return None


# (entry point, case id, variable named, values)
CASES = [(entry[0], *case) for entry in ENTRY_POINTS for case in cases_for(*entry)]
BASELINE_ERRORS = {
    entry: inputs.check(spec, constraints, baseline(spec))[1] for entry, spec, constraints in ENTRY_POINTS
}


@pytest.mark.parametrize(("entry", "spec", "constraints"), ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_the_baseline_is_accepted(entry, spec, constraints):
    """The defaults and examples themselves pass: a check that rejects everything proves nothing."""
    errors = BASELINE_ERRORS[entry]
    assert errors == [], f"{entry}: its defaults and examples are rejected: {errors}"


@pytest.mark.parametrize(("entry", "case", "named", "values"), CASES, ids=[c[1] for c in CASES])
def test_a_bad_input_is_rejected_naming_the_variable(entry, case, named, values):
    spec, constraints = BY_NAME[entry]
    # the baseline alone passes (test_the_baseline_is_accepted): the rejection is the bad value's
    assert BASELINE_ERRORS[entry] == [], f"{case}: the baseline itself is rejected"
    _, errors = inputs.check(spec, constraints, values)
    assert errors, f"{case}: accepted {values.get(named)!r}"
    assert any(named in e for e in errors), f"{case}: rejected without naming {named}: {errors}"


def test_the_fuzz_is_large_enough():
    assert len(CASES) >= 150, len(CASES)
    covered = {c[0].split(":")[0] for c in CASES}  # the role or the request
    roles = {r.name for r in ROLES} | {p.stem for p in REQUESTS}
    assert roles <= covered, f"no bad case for {sorted(roles - covered)}"


def test_required_means_required():
    """No required option has an empty default in the role's defaults/main.yml (or the spec), and
    every required string or list option has min_length: 1 (so "" or [] is refused)."""
    problems = []
    for role in ROLES:
        defaults_file = role / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        for entry, (spec, constraints) in inputs.load_role(str(role)).items():
            checks = constraints.get("options") or {}
            for name, option in spec.items():
                if not option.get("required"):
                    continue
                if name in defaults:
                    problems.append(f"{role.name}: required {name} has a default in defaults/main.yml")
                if option.get("type", "str") in ("str", "list", "dict") and not (checks.get(name) or {}).get(
                    "min_length"
                ):
                    problems.append(f"{role.name}:{entry}: required {name} lacks min_length: 1 in meta/constraints.yml")
    assert problems == []


def test_every_role_checks_its_inputs_first():
    """The first task of every role's tasks/main.yml is check_inputs on its role_path."""
    missing = []
    for role in ROLES:
        tasks = yaml.safe_load((role / "tasks" / "main.yml").read_text())
        first = tasks[0] if tasks else {}
        if "free4allweb.devops.check_inputs" not in first:
            missing.append(role.name)
    assert missing == []


def test_constraints_name_only_options_of_the_spec():
    stray = []
    for entry, spec, constraints in ENTRY_POINTS:
        for name in constraints.get("options") or {}:
            if name not in spec:
                stray.append(f"{entry}: {name}")
    assert stray == []


def test_a_role_run_in_check_mode_stops_at_its_inputs(tmp_path):
    """For every role, one real run in check mode: the baseline with one value out of range (a
    case Ansible's own argument spec accepts) fails at the role's first task, naming it."""
    plays = []
    expect = {}
    for role in ROLES:
        entry = f"{role.name}:main"
        spec, constraints = BY_NAME[entry]
        picked = None
        for case, named, values in cases_for(entry, spec, constraints):
            if ":bad" not in case and ":rule" not in case:
                continue
            _, errors = inputs.check(spec, {}, values)  # Ansible's part alone passes
            if not errors:
                picked = (named, values)
                break
        if not picked:
            continue
        named, values = picked
        expect[role.name] = named
        plays.append(
            {
                "name": f"Check {role.name}",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "block": [
                            {
                                "name": "Run the role",
                                "ansible.builtin.include_role": {"name": f"free4allweb.devops.{role.name}"},
                                "vars": values,
                            }
                        ],
                        "rescue": [
                            {
                                "name": "Keep the failure",
                                "ansible.builtin.copy": {
                                    "content": "{{ ansible_failed_result.msg }}",
                                    "dest": str(tmp_path / f"{role.name}.txt"),
                                    "mode": "0644",
                                },
                                "check_mode": False,
                            }
                        ],
                    }
                ],
            }
        )
    assert set(expect) == {r.name for r in ROLES}, f"no run for {sorted({r.name for r in ROLES} - set(expect))}"
    playbook = tmp_path / "fuzz.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    run = subprocess.run(
        [
            "ansible-playbook",
            "--check",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for role, named in expect.items():
        found = tmp_path / f"{role}.txt"
        assert found.exists(), f"{role}: the run with a bad {named} did not fail"
        message = found.read_text()
        assert f"{role}: invalid input" in message and named in message, (role, message)
