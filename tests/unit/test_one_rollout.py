"""The shape issue 10 asks for, checked on the source: no playbook guards on the platform, none
computes the other colour (the traffic module returns it), and every inventory names the
rollout's adapters in full."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((ROOT / "playbooks").rglob("*.yml"))
INVENTORIES = ["local", "kubernetes-test", "dev", "staging", "production"]
OTHER_COLOUR = re.compile(r"""['"]?(blue|green)['"]?\s+if\s+.*\belse\s+['"]?(blue|green)""")


def test_no_playbook_guards_on_the_platform():
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in PLAYBOOKS
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "free4allweb_platform !=" in line or "free4allweb_platform ==" in line
    ]
    assert found == []


def test_no_playbook_computes_the_other_colour():
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in PLAYBOOKS
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if OTHER_COLOUR.search(line)
    ]
    assert found == []


def group_vars(inventory: str) -> dict:
    out: dict = {}
    for f in sorted((ROOT / "inventories" / inventory / "group_vars" / "all").glob("*.yml")):
        out.update(yaml.safe_load(f.read_text()) or {})
    return out


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_names_the_rollouts_adapters(inventory):
    v = group_vars(inventory)
    assert v["free4allweb_release"] in {"systemd_slots", "kubernetes"}
    assert (ROOT / "playbooks" / "tasks" / "release" / v["free4allweb_release"]).is_dir()
    assert v["free4allweb_traffic"]["backend"] in {"haproxy", "kubernetes", "alb", "composite"}
    assert v["free4allweb_traffic"]["options"], "every router option is written out in the inventory"
    assert v["free4allweb_lock"]["backend"] in {"file", "kubernetes"}
    assert v["free4allweb_record"]["store"] in {"postgresql", "kubernetes"}
    assert v["free4allweb_prometheus_url"]
    hosts = yaml.safe_load((ROOT / "inventories" / inventory / "hosts.yml").read_text())
    groups = hosts["all"]["children"]
    assert {"deploy_control", "release_targets"} <= set(groups), inventory


@pytest.mark.parametrize("inventory", ["staging", "production"])
def test_kubernetes_inventories_lock_with_a_lease_and_record_in_configmaps(inventory):
    v = group_vars(inventory)
    assert v["free4allweb_lock"]["backend"] == "kubernetes"
    assert v["free4allweb_record"]["store"] == "kubernetes"
    assert [r["backend"] for r in v["free4allweb_traffic"]["options"]["routers"]] == ["alb", "kubernetes"]


def test_dev_has_the_seed_sizes():
    v = group_vars("dev")
    assert (v["free4allweb_app_replicas"], v["free4allweb_app_cpu"], v["free4allweb_app_memory"]) == (
        1,
        "500m",
        "512Mi",
    )
    assert v["k8s_app_hpa_enabled"] is False


def test_the_alert_rules_watch_the_backend_the_lab_routes_through():
    """The HAProxy contract, written out: the router drives the pool the loadbalancer role
    configures (one variable), and the alert rules (one file for every platform) watch that
    same backend. Renaming the backend in the inventory must fail here, not in production."""
    v = group_vars("local")
    assert v["free4allweb_traffic"]["options"]["pool"] == "{{ loadbalancer_backend_name }}"
    rules = (ROOT / "roles" / "monitoring" / "files" / "free4allweb.rules.yml").read_text()
    haproxy_cfg = (ROOT / "roles" / "loadbalancer" / "templates" / "haproxy.cfg.j2").read_text()
    frontends = set(re.findall(r"^frontend (\S+)", haproxy_cfg, re.MULTILINE)) - {"stats"}
    proxies = set(re.findall(r'proxy="([^"]+)"', rules))
    # the backend's rules name the inventory's backend; the availability rules the frontend
    assert proxies == {v["loadbalancer_backend_name"], *frontends}, (proxies, frontends)


def _module_tasks(tasks: list) -> list[tuple[str, str]]:
    """(module, name) of every task in order, blocks flattened (rescue/always left out)."""
    out = []
    for t in tasks:
        if "block" in t:
            out += _module_tasks(t["block"])
            continue
        module = next(k for k in t if k.startswith(("ansible.", "free4allweb.")))  # the action
        if module != "ansible.builtin.set_fact":  # runs in the controller, no module process
            out.append((module, t.get("name", "")))
    return out


def test_a_rollback_switches_right_after_the_lock():
    """rollback.yml's path to the switch: check the request (controller-side, no module process),
    take the lock, then one traffic call that reads, decides and switches. Anything else (the
    version, the check through the router, the record) comes after the traffic moved."""
    plays = yaml.safe_load((ROOT / "playbooks" / "rollback.yml").read_text())
    start = yaml.safe_load((ROOT / "playbooks" / "tasks" / "start_run.yml").read_text())
    assert [m for m, _ in _module_tasks(start)] == ["free4allweb.devops.check_request"]  # an action plugin
    assert (ROOT / "plugins" / "action" / "check_request.py").is_file()
    tasks = _module_tasks(plays[1]["tasks"])
    assert [m for m, _ in tasks[:2]] == ["free4allweb.devops.deploy_lock", "free4allweb.devops.traffic"]
    switch = plays[1]["tasks"][1]["block"][0]["free4allweb.devops.traffic"]
    assert "rollback" in switch["send_all_to"]
