# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the inventory's app hosts into blue/green slots.

Every app host runs one slot per colour, each on its own port. The load balancer, Prometheus and
the deploy's health gate all need that list in a slightly different shape; these filters make
each shape from the same inputs so they can never disagree.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _address(host: str, hostvars, address_var: str) -> str:
    try:
        vars_ = hostvars[host]
    except KeyError:
        raise AnsibleFilterError(f"app host {host!r} is not in the inventory") from None
    address = vars_.get(address_var) or vars_.get("ansible_host") or host
    return str(address)


def app_slots(hosts, hostvars, ports, address_var="free4allweb_address"):
    """One dict per slot: host, colour, name (<host>_<colour>), address (<ip>:<port>), ip, port."""
    if not isinstance(ports, dict) or not ports:
        raise AnsibleFilterError("ports must be a dict of colour to port, for example {blue: 8001, green: 8002}")
    slots = []
    for host in hosts:
        ip = _address(host, hostvars, address_var)
        for colour, port in sorted(ports.items()):
            slots.append(
                {
                    "host": host,
                    "colour": colour,
                    "name": f"{host}_{colour}",
                    "ip": ip,
                    "port": int(port),
                    "address": f"{ip}:{int(port)}",
                }
            )
    return slots


def app_servers(hosts, hostvars, ports, address_var="free4allweb_address"):
    """The loadbalancer role's loadbalancer_servers: one dict per host with a port per colour."""
    app_slots([], hostvars, ports)  # validates ports
    return [{"name": h, "address": _address(h, hostvars, address_var), "ports": dict(ports)} for h in hosts]


class FilterModule:
    def filters(self):
        return {"app_slots": app_slots, "app_servers": app_servers}
