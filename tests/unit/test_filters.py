"""The slot filters: the load balancer, Prometheus and the health gate see the same slots."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.free4allweb.devops.plugins.filter.slots import app_servers, app_slots

HOSTVARS = {"app1": {"free4allweb_address": "10.0.0.1"}, "app2": {"ansible_host": "10.0.0.2"}}
PORTS = {"green": 8002, "blue": 8001}


def test_slots_cover_every_host_and_colour():
    slots = app_slots(["app1", "app2"], HOSTVARS, PORTS)
    assert [(s["name"], s["address"]) for s in slots] == [
        ("app1_blue", "10.0.0.1:8001"),
        ("app1_green", "10.0.0.1:8002"),
        ("app2_blue", "10.0.0.2:8001"),
        ("app2_green", "10.0.0.2:8002"),
    ]


def test_servers_match_the_slots():
    servers = app_servers(["app1", "app2"], HOSTVARS, PORTS)
    assert servers == [
        {"name": "app1", "address": "10.0.0.1", "ports": PORTS},
        {"name": "app2", "address": "10.0.0.2", "ports": PORTS},
    ]
    from_servers = sorted(f"{s['name']}_{c}" for s in servers for c in s["ports"])
    assert from_servers == sorted(s["name"] for s in app_slots(["app1", "app2"], HOSTVARS, PORTS))


def test_bad_inputs_fail_clearly():
    with pytest.raises(AnsibleFilterError, match="not in the inventory"):
        app_slots(["nope"], HOSTVARS, PORTS)
    with pytest.raises(AnsibleFilterError, match="ports must be"):
        app_servers(["app1"], HOSTVARS, [8001])
