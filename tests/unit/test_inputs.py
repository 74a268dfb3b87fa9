"""plugins/module_utils/inputs.py: the checks beyond Ansible's argument spec, case by case."""

from __future__ import annotations

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils import inputs


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("port", [1, 80, 65535], [0, 65536, -1, "80", True]),
        ("cidr", ["10.0.0.0/16", "10.1.2.0/24", "fd00::/8"], ["10.0.0.0/33", "10.0.0.1/16", "10.0.0.0", "", None]),
        ("dns_label", ["free4allweb", "a", "a-1"], ["Bad_NS", "-a", "a-", "a" * 64, ""]),
        ("dns_name", ["api.example.com", "a"], ["A.example", "a..b", "a" * 254]),
        ("version", ["1.4.0", "2.0.0rc1", "1.0.post1"], ["../../etc", "latest", "1.0+local", "1!2.0", "", "1.0 "]),
        (
            "url",
            ["http://10.0.0.1:9095/alerts", "https://hooks.example.com/x"],
            ["webhook", "ftp://x", "http://", "http://a b"],
        ),
        ("duration", ["15s", "500ms", "1h30m", "30d"], ["soon", "10", "-5s", "1.5s", ""]),
        ("aws_region", ["eu-west-1", "us-gov-west-1", "ap-southeast-2"], ["mars-1", "eu-west", "EU-WEST-1"]),
        ("aws_zone", ["eu-west-1a"], ["eu-west-1", "mars-1a"]),
        ("absolute_path", ["/var/lib/x"], ["var/lib", "/a/../etc", ""]),
        ("host", ["db.internal", "10.0.0.1", "localhost"], ["bad host", "-x", ""]),
        ("bind_address", ["*", "0.0.0.0", "127.0.0.1", "::"], ["everywhere", "localhost"]),
        ("rds_window", ["03:00-04:00", "23:30-00:30"], ["25:00-26:00", "03:00"]),
        ("rds_weekly_window", ["sun:04:00-sun:05:00"], ["someday:04:00-sun:05:00", "sun:4:00-sun:05:00"]),
    ],
)
def test_formats(fmt, good, bad):
    for value in good:
        assert inputs.check_value("v", value, {"format": fmt}) == [], (fmt, value)
    for value in bad:
        if value is None:  # not given: nothing to check
            assert inputs.check_value("v", value, {"format": fmt}) == []
            continue
        errors = inputs.check_value("v", value, {"format": fmt})
        assert errors and errors[0].startswith("v is "), (fmt, value, errors)


def test_ranges_name_the_variable_the_value_and_what_is_allowed():
    assert inputs.check_value("loadbalancer_port", 99999, {"format": "port"}) == [
        "loadbalancer_port is 99999: it must be a TCP port, 1 to 65535"
    ]
    assert inputs.check_value("app_workers", 0, {"min": 1, "max": 64}) == ["app_workers is 0: it must be from 1 to 64"]
    assert inputs.check_value("x", -1, {"min": 0}) == ["x is -1: it must be at least 0"]
    assert inputs.check_value("x", 5, {"max": 3}) == ["x is 5: it must be at most 3"]
    assert inputs.check_value("x", "five", {"min": 0}) == ["x is 'five': it must be a number at least 0"]
    assert inputs.check_value("x", True, {"max": 3}) == ["x is True: it must be a number at most 3"]


def test_empty_is_said_once():
    assert inputs.check_value("app_version", "", {"min_length": 1, "format": "version"}) == [
        "app_version is '': it must not be empty"
    ]
    assert inputs.check_value("x", [], {"min_length": 1}) == ["x is []: it must not be empty"]


def test_nested_paths_are_named():
    check = {"items": {"fields": {"ports": {"values": {"format": "port"}}, "name": {"format": "dns_label"}}}}
    servers = [{"name": "app1", "ports": {"blue": 8001}}, {"name": "App_2", "ports": {"blue": 8001, "green": 0}}]
    errors = inputs.check_value("loadbalancer_servers", servers, check)
    assert [e.split(" is ")[0] for e in errors] == [
        "loadbalancer_servers[1].ports.green",
        "loadbalancer_servers[1].name",
    ]


def test_list_shape():
    check = {"min_length": 1, "items": {"min": 1, "max": 100}, "ascending": True, "last": 100}
    assert inputs.check_value("canary_steps", [5, 25, 50, 100], check) == []
    errors = inputs.check_value("canary_steps", [50, 10], check)
    assert any("rise strictly" in e for e in errors) and any("last item must be 100" in e for e in errors)
    assert inputs.check_value("canary_steps", [0, 100], check) == ["canary_steps[0] is 0: it must be from 1 to 100"]
    assert inputs.check_value("c", ["a", "a"], {"unique": True}) == ["c is ['a', 'a']: its items must differ"]


def test_pattern_says_what_it_means():
    check = {"pattern": "^postgres(ql)?://", "says": "a PostgreSQL URL"}
    assert inputs.check_value("url", "mysql://x", check) == ["url is 'mysql://x': it must be a PostgreSQL URL"]


def test_rules_across_variables():
    values = {"alloc": 100, "max": 50, "a": 80, "b": 80, "env": {"environment": "production"}, "protect": False}
    assert inputs.check_rule({"at_most": ["alloc", "max"]}, values) == [
        "alloc is 100 and max is 50: alloc must be at most max"
    ]
    assert inputs.check_rule({"at_most": ["alloc", "max"]}, {**values, "max": 100}) == []
    assert inputs.check_rule({"less_than": ["a", "b"]}, values)
    assert inputs.check_rule({"distinct": ["a", "b"]}, values) == ["b and a are both 80: they must differ"]
    rule = {"when": {"env.environment": "production"}, "then": {"protect": {"equals": True}}}
    assert inputs.check_rule(rule, values) == ["protect is False: it must be True when env.environment is 'production'"]
    assert inputs.check_rule(rule, {**values, "env": {"environment": "dev"}}) == []
    assert inputs.check_rule(rule, {**values, "protect": True}) == []


def test_windows_overlap_also_across_midnight_and_the_week():
    rule = {"windows_disjoint": ["backup", "maintenance"]}
    assert inputs.check_rule(rule, {"backup": "03:00-04:00", "maintenance": "sun:04:00-sun:05:00"}) == []
    assert inputs.check_rule(rule, {"backup": "03:30-04:30", "maintenance": "sun:04:00-sun:05:00"})
    # a daily window across midnight meets Monday 00:15
    assert inputs.check_rule(rule, {"backup": "23:30-00:30", "maintenance": "mon:00:15-mon:01:00"})
    # a weekly window across the end of the week meets Sunday 23:30 daily
    assert inputs.check_rule(rule, {"backup": "23:30-23:45", "maintenance": "sun:23:00-mon:00:30"})
    assert inputs.check_rule(rule, {"backup": "05:00-06:00", "maintenance": "sun:23:00-mon:00:30"}) == []


def test_zones_in_region():
    rule = {"zones_in_region": ["azs", "region"]}
    assert inputs.check_rule(rule, {"azs": ["eu-west-1a", "eu-west-1b"], "region": "eu-west-1"}) == []
    errors = inputs.check_rule(rule, {"azs": ["eu-west-1a", "us-east-1b"], "region": "eu-west-1"})
    assert errors and errors[0].startswith("azs holds ['us-east-1b']")


def test_a_malformed_constraint_is_the_roles_bug_not_the_inputs():
    with pytest.raises(inputs.InputSpecError, match="unknown check"):
        inputs.check_value("x", 1, {"minimum": 1})
    with pytest.raises(inputs.InputSpecError, match="unknown format"):
        inputs.check_value("x", "a", {"format": "colour"})
    with pytest.raises(inputs.InputSpecError):
        inputs.check_rule({"bigger": ["a", "b"]}, {})


def test_check_runs_ansibles_validation_first_and_does_not_repeat_a_type_error():
    spec = {"port": {"type": "int", "default": 80}, "name": {"type": "str", "required": True}}
    constraints = {"options": {"port": {"format": "port"}, "name": {"min_length": 1}}}
    validated, errors = inputs.check(spec, constraints, {"port": "80", "name": "x"})
    assert errors == [] and validated["port"] == 80  # converted by Ansible, then checked
    _, errors = inputs.check(spec, constraints, {"port": "soon", "name": "x"})
    assert len(errors) == 1 and "port" in errors[0]
    _, errors = inputs.check(spec, constraints, {"port": 0})
    assert any("name" in e and "missing" in e for e in errors) and any(e.startswith("port is 0") for e in errors)


def test_a_request_spec_keeps_its_checks_beside_each_option():
    spec = {"app_version": {"type": "str", "required": True, "check": {"format": "version"}}, "n": {"type": "int"}}
    ansible_spec, constraints = inputs.split_request_spec(spec)
    assert "check" not in ansible_spec["app_version"] and "check" in spec["app_version"]  # the input is not changed
    assert constraints == {"options": {"app_version": {"format": "version"}}}


def test_or_empty_accepts_only_the_empty_string_besides_the_format():
    check = {"format": "aws_region", "or_empty": True}
    assert inputs.check_value("dr_region", "", check) == []
    assert inputs.check_value("dr_region", "eu-central-1", check) == []
    assert inputs.check_value("dr_region", "mars-1", check) == [
        "dr_region is 'mars-1': it must be an AWS region such as eu-west-1, or empty"
    ]
