"""canary_evaluate's DOCUMENTATION and its argument_spec must say the same thing."""

from __future__ import annotations

import yaml

from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import MetricSpec, free4allweb_metrics
from ansible_collections.free4allweb.devops.plugins.modules import canary_evaluate

DOC = yaml.safe_load(canary_evaluate.DOCUMENTATION)


def _compare(doc_options: dict, spec: dict, where: str) -> None:
    assert set(doc_options) == set(spec), f"{where}: documented {sorted(doc_options)} vs spec {sorted(spec)}"
    for name, d in doc_options.items():
        s = spec[name]
        assert d["type"] == s["type"], f"{where}.{name}: type"
        assert d.get("required", False) == s.get("required", False), f"{where}.{name}: required"
        assert d.get("choices") == s.get("choices"), f"{where}.{name}: choices"
        if "default" in d or "default" in s:
            assert d.get("default") == s.get("default"), (
                f"{where}.{name}: default {d.get('default')} vs {s.get('default')}"
            )
        if "suboptions" in d:
            _compare(d["suboptions"], s["options"], f"{where}.{name}")


def test_documentation_matches_argument_spec():
    _compare(DOC["options"], canary_evaluate.argument_spec(), "options")


def test_secrets_are_no_log():
    spec = canary_evaluate.argument_spec()
    assert spec["prometheus_token"]["no_log"] is True
    assert spec["prometheus_password"]["no_log"] is True


def test_examples_and_return_parse():
    assert yaml.safe_load(canary_evaluate.EXAMPLES)
    ret = yaml.safe_load(canary_evaluate.RETURN)
    assert {"verdict", "score", "metrics", "reason", "window"} <= set(ret)


def test_metric_options_cover_every_metric_field():
    # every field a metric definition may carry is an option of the module, and the defaults load
    fields = set(MetricSpec.__dataclass_fields__)
    assert set(canary_evaluate.METRIC_OPTIONS) == fields
    for d in free4allweb_metrics():
        assert set(d) <= fields
        MetricSpec.from_dict(d)
