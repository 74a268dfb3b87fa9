#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: traffic
short_description: Read or shift blue/green traffic weights on a router
version_added: "0.1.0"
description:
  - Reads which colour (C(blue) or C(green)) receives traffic, straight from the router, and
    optionally moves the router to new per-colour weights.
  - One interface for every router. C(haproxy) drives HAProxy's runtime API (run the task on the
    load balancer host). Other backends (Kubernetes, ALB) plug into the same interface.
  - Before a colour that had no traffic gets any, every one of its members must be healthy on the
    router (see O(require_healthy)), so a switch never sends requests to a colour that cannot
    answer them.
  - The live colour is never read from a file; with HAProxy the weights are also saved to the
    server-state file so a reload keeps them.
options:
  backend:
    description: The router to drive.
    type: str
    default: haproxy
    choices: [alb, composite, haproxy, kubernetes]
  options:
    description:
      - Backend options.
      - For C(haproxy) - C(socket) (runtime API socket, default C(/run/haproxy/admin.sock)),
        C(pool) (HAProxy backend holding the slots, default C(app)), C(state_file) (server-state
        file written after a change, default C(/var/lib/haproxy/server-state); empty to skip),
        C(timeout) (seconds, default 5), C(separator) (between host and colour in server names,
        default C(_)).
      - For C(alb) - C(region), C(load_balancer_name) and C(listener_port) (default 443) or
        C(listener_arn), C(blue_target_group), C(green_target_group) (names or ARNs), C(profile),
        C(endpoint_url).
      - For C(kubernetes) - C(namespace), C(service) (its selector carries the live colour),
        C(route) (HTTPRoute carrying canary weights), C(colour_label) (default C(colour)),
        C(backend_pattern) (default C({service}-{colour})), C(kubeconfig), C(context). Reading
        a namespace where the Service does not exist yet (nothing was ever released) gives no
        live colour and no members.
      - For C(composite) - C(routers), a list of C({backend, options}) that move together. The
        first router leads (its weights are the live state); the others follow it (a router
        that cannot split, such as a Service without an HTTPRoute, follows the larger share).
        Members are every router's, so a colour gains traffic only when healthy on all of them.
        Production uses it for the ALB's weights plus the EKS Service selector.
    type: dict
    default: {}
  weights:
    description:
      - Wanted weight per colour, 0 to 100. Colours left out keep their weight.
      - Omit to only read the router.
      - "C({blue: 0, green: 100}) switches all traffic to green; C({blue: 95, green: 5}) sends 5 %."
    type: dict
  send_all_to:
    description:
      - Send all traffic to this colour and none to the other (the same as O(weights) with 100
        and 0). Mutually exclusive with O(weights).
      - C(idle) and C(rollback) name the colour from the state this same call reads (see
        RV(idle_colour) and RV(rollback_colour)), so the router is read, the target chosen and
        the switch made in one call; C(rollback) fails when the router has never served.
    type: str
    choices: [blue, green, idle, rollback]
  require_healthy:
    description: Refuse to give traffic to a colour that has none now unless enough of its members
      are healthy on the router.
    type: bool
    default: true
  min_healthy_ratio:
    description:
      - Share of a colour's members that must be healthy for it to gain traffic. At least one
        member must always be healthy, so C(0) means "any one".
    type: float
    default: 1.0
  wait_healthy_timeout:
    description: Seconds to wait for the router to see the gaining colour healthy before refusing.
    type: float
    default: 0
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Find the live colour
  free4allweb.devops.traffic:
  register: router

- name: Switch all traffic to green
  free4allweb.devops.traffic:
    weights: {blue: 0, green: 100}
    wait_healthy_timeout: 10

- name: Switch all traffic to the colour that is not live, on the ALB and the EKS Service together
  free4allweb.devops.traffic:
    backend: composite
    options:
      routers:
        - backend: alb
          options: {region: eu-west-1, load_balancer_name: free4allweb-production,
                    blue_target_group: free4allweb-production-blue, green_target_group: free4allweb-production-green}
        - backend: kubernetes
          options: {namespace: free4allweb, service: free4allweb}
    send_all_to: "{{ router.idle_colour }}"

- name: Send 5 % of traffic to the canary colour
  free4allweb.devops.traffic:
    options:
      socket: /run/haproxy/admin.sock
      pool: app
    weights: {blue: 95, green: 5}
"""

RETURN = r"""
live_colour:
  description: Colour with the larger share after the task; null when none or an even split.
  returned: always
  type: str
  sample: green
idle_colour:
  description:
    - The colour a release goes to - the one that is not live (before the task). With nothing
      live (a router that never served), C(blue); during a split, the smaller share.
  returned: always
  type: str
  sample: blue
rollback_colour:
  description:
    - The colour a rollback returns to (before the task) - during a split (an interrupted
      canary) the baseline, the larger share; otherwise the colour that is not live. Null when
      the router never served.
  returned: always
  type: str
  sample: blue
before:
  description: Router state before the task.
  returned: always
  type: dict
  contains:
    weights:
      description: Weight per colour.
      type: dict
      sample: {blue: 100, green: 0}
    live_colour:
      description: Colour with the larger share.
      type: str
    idle_colour:
      description: The colour that is not live (see RV(idle_colour)).
      type: str
    rollback_colour:
      description: Where a rollback goes (see RV(rollback_colour)).
      type: str
    split:
      description: True when more than one colour gets traffic.
      type: bool
    shares:
      description: Share of traffic per colour, 0 to 1.
      type: dict
    members:
      description: Each server, pod or target, with its colour, health, weight and detail.
      type: list
      elements: dict
after:
  description: Router state after the task (predicted in check mode), same shape as RV(before).
  returned: always
  type: dict
to_colour:
  description: The colour O(send_all_to) resolved to.
  returned: when O(send_all_to) is given
  type: str
  sample: blue
decided_at:
  description:
    - When the module decided to switch (Unix seconds, the host's clock) - the router was read
      and the gaining colour found healthy on it; the change is applied right after.
  returned: when changed
  type: float
  sample: 1795900000.101
apply_seconds:
  description: Time the router took to accept the change.
  returned: when changed and not in check mode
  type: float
  sample: 0.0021
applied_at:
  description: When the router had taken the change (Unix seconds, the host's clock).
  returned: when changed and not in check mode
  type: float
  sample: 1795900000.123
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import BACKENDS, build_backend
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import TrafficError
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.shift import TARGETS, shift_traffic


def main():
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "default": "haproxy", "choices": sorted(BACKENDS)},
            "options": {"type": "dict", "default": {}},
            "weights": {"type": "dict"},
            "send_all_to": {"type": "str", "choices": list(TARGETS)},
            "require_healthy": {"type": "bool", "default": True},
            "min_healthy_ratio": {"type": "float", "default": 1.0},
            "wait_healthy_timeout": {"type": "float", "default": 0.0},
        },
        mutually_exclusive=[("weights", "send_all_to")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        backend = build_backend(p["backend"], p["options"])
    except TrafficError as exc:
        module.fail_json(msg=str(exc), known_backends=sorted(BACKENDS))
    try:
        result = shift_traffic(
            backend,
            p["weights"],
            send_all_to=p["send_all_to"],
            require_healthy=p["require_healthy"],
            min_healthy_ratio=p["min_healthy_ratio"],
            wait_healthy_timeout=p["wait_healthy_timeout"],
            check_mode=module.check_mode,
        )
    except TrafficError as exc:
        module.fail_json(msg=str(exc))
    finally:
        backend.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
