# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks beyond what an Ansible argument spec can say: ranges, formats and rules across
variables. Plain Python, used on the controller by the check_inputs and check_request actions and
by the tests.

A role keeps them in ``meta/constraints.yml`` beside ``meta/argument_specs.yml`` (whose schema
admits no extra keys); a playbook request spec (``playbooks/vars/*_request.yml``) keeps them under
each option's ``check`` key. The language is the same::

    main:                                   # the entry point, as in argument_specs
      options:
        loadbalancer_port: {format: port}
        loadbalancer_health_rise: {min: 1, max: 100}
        loadbalancer_servers:
          min_length: 1
          items: {fields: {name: {format: dns_label}, ports: {values: {format: port}}}}
      rules:
        - {distinct: [loadbalancer_port, loadbalancer_stats_port]}
        - {at_most: [aws_rds_allocated_storage, aws_rds_max_allocated_storage]}
        - {when: {aws_rds_tags.environment: production}, then: {aws_rds_deletion_protection: {equals: true}}}

Checks of one value: min, max (numbers); min_length, max_length (strings, lists, dicts); format
(FORMATS); pattern with says (a regular expression and what it means to a reader); equals;
not_in; items (a check for every element of a list); fields (checks for keys of a dict); values
(a check for every value of a dict); unique and ascending (lists); last (a list's last element);
or_empty (the empty string is accepted as "none", the other checks apply to any other value).
A value that is None (not given, no default) is not checked: `required` in the argument spec says
whether it must be given.

Every message names the variable (with the path inside it: ``loadbalancer_servers[0].ports.blue``),
the value found and what is allowed."""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from urllib.parse import urlsplit

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - ansible-core depends on packaging
    Version = None
    InvalidVersion = ValueError

CHECK_KEYS = frozenset(
    (
        "min",
        "max",
        "min_length",
        "max_length",
        "format",
        "pattern",
        "says",
        "equals",
        "not_in",
        "items",
        "fields",
        "values",
        "unique",
        "ascending",
        "last",
        "or_empty",
    )
)
RULE_KINDS = frozenset(("distinct", "at_most", "less_than", "when", "windows_disjoint", "zones_in_region"))

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(ms|us|s|m|h|d|w|y))+$")
_AWS_REGION = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)(-gov|-iso|-isob)?-"
    r"(north|south|east|west|central|northeast|southeast|northwest|southwest)-[1-9]$"
)
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RDS_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")
_RDS_WEEKLY = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$"
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class InputSpecError(ValueError):
    """The constraints themselves are malformed (a bug in the role, not in the input)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _port(value) -> bool:
    return _is_int(value) and 1 <= value <= 65535


def _cidr(value) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return False
    return isinstance(value, str) and "/" in value


def _ip(value) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _hostname(value) -> bool:
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in value.rstrip(".").split("."))


def _host(value) -> bool:
    return _ip(value) or _hostname(value)


def _bind_address(value) -> bool:
    return value == "*" or _ip(value)


def _dns_name(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 253 and all(_DNS_LABEL.match(part) for part in value.split("."))


def _version(value) -> bool:
    # no epoch (!) or local part (+): the version names files and is a Kubernetes label value
    if not isinstance(value, str) or Version is None or not re.match(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,62}$", value):
        return False
    try:
        Version(value)
    except InvalidVersion:
        return False
    return True


def _url(value) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and _host(parts.hostname) and port_ok


def _absolute_path(value) -> bool:
    return isinstance(value, str) and value.startswith("/") and ".." not in value.split("/") and "\0" not in value


def _relative_or_absolute_path(value) -> bool:
    return isinstance(value, str) and bool(value) and ".." not in value.split("/") and "\0" not in value


def _zone_region(value):
    """The region of an availability zone (eu-west-1a -> eu-west-1), or None."""
    if not isinstance(value, str) or not re.match(r"^.+-[1-9][a-z]$", value):
        return None
    return value[:-1] if _AWS_REGION.match(value[:-1]) else None


def _match(pattern):
    return lambda value: isinstance(value, str) and bool(pattern.match(value))


# name -> (test, what is allowed)
FORMATS = {
    "port": (_port, "a TCP port, 1 to 65535"),
    "cidr": (_cidr, "a network in CIDR notation with its host bits zero, such as 10.0.0.0/16"),
    "ip": (_ip, "an IP address"),
    "host": (_host, "a host name or an IP address"),
    "bind_address": (_bind_address, "an IP address or * (every address)"),
    "dns_label": (
        _match(_DNS_LABEL),
        "a DNS-1123 label: lowercase letters, digits and '-', 1 to 63, no '-' at the ends",
    ),
    "dns_name": (_dns_name, "a DNS-1123 name: dot-separated labels of lowercase letters, digits and '-'"),
    "version": (_version, "a PEP 440 version such as 1.4.0 (no epoch, local part or path characters)"),
    "url": (_url, "an http:// or https:// URL with a host"),
    "duration": (_match(_DURATION), "a duration such as 500ms, 30s, 5m, 1h or 30d"),
    "aws_region": (_match(_AWS_REGION), "an AWS region such as eu-west-1"),
    "aws_zone": (lambda v: _zone_region(v) is not None, "an AWS availability zone such as eu-west-1a"),
    "absolute_path": (_absolute_path, "an absolute path without '..'"),
    "path": (_relative_or_absolute_path, "a path without '..'"),
    "unix_name": (
        _match(_UNIX_NAME),
        "a user or group name: lowercase letters, digits, '_' and '-', starting with a letter or '_'",
    ),
    "s3_bucket": (_match(_S3_BUCKET), "an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-'"),
    "pg_identifier": (
        _match(_PG_IDENTIFIER),
        "a PostgreSQL name: lowercase letters, digits and '_', starting with a letter or '_'",
    ),
    "rds_window": (_match(_RDS_WINDOW), "a daily UTC window hh:mm-hh:mm such as 03:00-04:00"),
    "rds_weekly_window": (_match(_RDS_WEEKLY), "a weekly UTC window ddd:hh:mm-ddd:hh:mm such as sun:04:00-sun:05:00"),
}


def _show(value) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_value(name: str, value, check: dict) -> list[str]:
    """Messages for `value` (the variable or path `name`) against one check dict."""
    if value is None:
        return []
    unknown = set(check) - CHECK_KEYS
    if unknown:
        raise InputSpecError(f"{name}: unknown check(s) {sorted(unknown)} (known: {sorted(CHECK_KEYS)})")
    if check.get("or_empty") and value == "":  # "" stands for "none" here (no DR region, ...)
        return []
    errors = []
    shown = _show(value)
    if "equals" in check and value != check["equals"]:
        errors.append(f"{name} is {shown}: it must be {_show(check['equals'])}")
    if "not_in" in check and value in check["not_in"]:
        errors.append(f"{name} is {shown}: it must not be any of {', '.join(_show(v) for v in check['not_in'])}")
    if "min" in check or "max" in check:
        low, high = check.get("min"), check.get("max")
        allowed = (
            f"from {low} to {high}"
            if low is not None and high is not None
            else (f"at least {low}" if low is not None else f"at most {high}")
        )
        if not _number(value):
            errors.append(f"{name} is {shown}: it must be a number {allowed}")
        elif (low is not None and value < low) or (high is not None and value > high):
            errors.append(f"{name} is {shown}: it must be {allowed}")
    if "min_length" in check or "max_length" in check:
        low, high = check.get("min_length"), check.get("max_length")
        if hasattr(value, "__len__"):
            if low is not None and len(value) < low:
                if not value:  # empty: what else it breaks would only repeat this
                    return [f"{name} is {shown}: it must not be empty"]
                errors.append(f"{name} has {len(value)} item(s) or characters: it needs at least {low}")
            if high is not None and len(value) > high:
                errors.append(f"{name} is {shown}: at most {high} items or characters allowed")
    if "format" in check:
        fmt = check["format"]
        if fmt not in FORMATS:
            raise InputSpecError(f"{name}: unknown format '{fmt}' (known: {sorted(FORMATS)})")
        test, allowed = FORMATS[fmt]
        if not test(value):
            errors.append(f"{name} is {shown}: it must be {allowed}" + (", or empty" if check.get("or_empty") else ""))
    if "pattern" in check and (not isinstance(value, str) or not re.search(check["pattern"], value)):
        errors.append(f"{name} is {shown}: it must be {check.get('says') or 'matching ' + check['pattern']}")
    if isinstance(value, (list, tuple)):
        if check.get("unique") and len({repr(v) for v in value}) != len(value):
            errors.append(f"{name} is {shown}: its items must differ")
        if check.get("ascending") and any(not value[i] < value[i + 1] for i in range(len(value) - 1)):
            errors.append(f"{name} is {shown}: its items must rise strictly")
        if "last" in check and (not value or value[-1] != check["last"]):
            errors.append(f"{name} is {shown}: its last item must be {_show(check['last'])}")
        if "items" in check:
            for i, item in enumerate(value):
                errors += check_value(f"{name}[{i}]", item, check["items"])
    if isinstance(value, dict):
        for key, sub in (check.get("fields") or {}).items():
            errors += check_value(f"{name}.{key}", value.get(key), sub)
        if "values" in check:
            for key, item in value.items():
                errors += check_value(f"{name}.{key}", item, check["values"])
    return errors


def _lookup(values: dict, path: str):
    """values['a']['b'] for 'a.b' (None when any part is missing)."""
    current = values
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _window_minutes(text) -> list[tuple[int, int]]:
    """A daily (hh:mm-hh:mm) or weekly (ddd:hh:mm-ddd:hh:mm) UTC window as minute intervals of
    the week [start, end), split where it wraps past Sunday midnight."""
    week = 7 * 1440
    if not isinstance(text, str):
        return []

    def minute(part: str) -> int:
        fields = part.split(":")
        day = _DAYS.index(fields[0]) if len(fields) == 3 else 0
        return day * 1440 + int(fields[-2]) * 60 + int(fields[-1])

    if _RDS_WEEKLY.match(text):
        start, end = (minute(p) for p in text.split("-"))
        pairs = [(start, end if end > start else end + week)]
    elif _RDS_WINDOW.match(text):
        start, end = (minute(p) for p in text.split("-"))
        length = end - start if end > start else end + 1440 - start
        pairs = [(day * 1440 + start, day * 1440 + start + length) for day in range(7)]
    else:
        return []
    out = []
    for start, end in pairs:
        out += [(start, week), (0, end - week)] if end > week else [(start, end)]
    return out


def check_rule(rule: dict, values: dict) -> list[str]:
    """Messages for one rule across variables."""
    if not isinstance(rule, dict) or not set(rule) & RULE_KINDS:
        raise InputSpecError(f"a rule must be one of {sorted(RULE_KINDS)}: {rule}")
    if "distinct" in rule:
        names = rule["distinct"]
        seen = {}
        for n in names:
            v = _lookup(values, n)
            if v is None:
                continue
            if repr(v) in seen:
                return [f"{n} and {seen[repr(v)]} are both {_show(v)}: they must differ"]
            seen[repr(v)] = n
        return []
    if "at_most" in rule or "less_than" in rule:
        strict = "less_than" in rule
        low_name, high_name = rule["less_than" if strict else "at_most"]
        low, high = _lookup(values, low_name), _lookup(values, high_name)
        if not (_number(low) and _number(high)):
            return []
        if (low >= high) if strict else (low > high):
            relation = "below" if strict else "at most"
            found = f"{low_name} is {_show(low)} and {high_name} is {_show(high)}"
            return [f"{found}: {low_name} must be {relation} {high_name}"]
        return []
    if "windows_disjoint" in rule:
        a_name, b_name = rule["windows_disjoint"]
        a, b = _lookup(values, a_name), _lookup(values, b_name)
        wa, wb = _window_minutes(a), _window_minutes(b)
        if any(s1 < e2 and s2 < e1 for s1, e1 in wa for s2, e2 in wb):
            return [f"{a_name} ({_show(a)}) and {b_name} ({_show(b)}) overlap: the windows must not"]
        return []
    if "zones_in_region" in rule:
        zones_name, region_name = rule["zones_in_region"]
        zones, region = _lookup(values, zones_name), _lookup(values, region_name)
        if not isinstance(zones, list) or not isinstance(region, str):
            return []
        wrong = [z for z in zones if _zone_region(z) != region]
        if wrong:
            return [
                f"{zones_name} holds {_show(wrong)}, not zones of {region_name} ({_show(region)}) such as {region}a"
            ]
        return []
    # when: {path: value, ...} then: {path: check}
    condition, then = rule["when"], rule.get("then") or {}
    if not all(_lookup(values, path) == wanted for path, wanted in condition.items()):
        return []
    because = " and ".join(f"{path} is {_show(wanted)}" for path, wanted in condition.items())
    errors = []
    for path, check in then.items():
        errors += [f"{message} when {because}" for message in check_value(path, _lookup(values, path), check)]
    return errors


def check_constraints(constraints: dict | None, values: dict) -> list[str]:
    """Messages for `values` against one entry point's constraints ({options, rules})."""
    constraints = constraints or {}
    unknown = set(constraints) - {"options", "rules"}
    if unknown:
        raise InputSpecError(f"constraints take options and rules, not {sorted(unknown)}")
    errors = []
    for name, check in (constraints.get("options") or {}).items():
        errors += check_value(name, values.get(name), check or {})
    for rule in constraints.get("rules") or []:
        errors += check_rule(rule, values)
    return errors


def load_role(role_path: str) -> dict:
    """{entry point: (argument spec options, constraints)} of the role at `role_path`, from its
    meta/argument_specs.yml and meta/constraints.yml (the controller's files)."""
    import yaml  # the controller's (ansible-core's); imported here so hosts never need it

    with open(os.path.join(role_path, "meta", "argument_specs.yml"), encoding="utf-8") as f:
        specs = (yaml.safe_load(f) or {}).get("argument_specs") or {}
    constraints = {}
    path = os.path.join(role_path, "meta", "constraints.yml")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            constraints = yaml.safe_load(f) or {}
    return {entry: (spec.get("options") or {}, constraints.get(entry) or {}) for entry, spec in specs.items()}


def split_request_spec(spec: dict) -> tuple[dict, dict]:
    """A request spec with `check` keys -> (the argument spec Ansible takes, the constraints)."""
    spec = copy.deepcopy(spec)
    options = {}
    for name, option in spec.items():
        if isinstance(option, dict) and "check" in option:
            options[name] = option.pop("check") or {}
    return spec, {"options": options}


def check(spec: dict, constraints: dict | None, values: dict) -> tuple[dict, list[str]]:
    """Ansible's own argument spec validation (types, required, choices), then the constraints on
    the validated values. Returns (validated values, messages)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    result = ArgumentSpecValidator(spec).validate(dict(values), validate_role_argument_spec=True)
    errors = list(result.error_messages)
    validated = result.validated_parameters
    # a value of the wrong type is already named; its range or format would only repeat it
    wrong = {e.split("'")[1] for e in errors if e.count("'") >= 2}
    errors += [
        e
        for e in check_constraints(constraints, validated)
        if not any(e.startswith(f"{w} ") or e.startswith(f"{w}[") or e.startswith(f"{w}.") for w in wrong)
    ]
    return validated, errors
