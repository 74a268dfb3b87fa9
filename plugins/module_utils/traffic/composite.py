"""Several routers that move together: the first one decides, the others follow.

Production on EKS has two: the ALB's forward weights carry the users' traffic to the blue and
green target groups (bound to the colour Services by TargetGroupBindings), and the stable
Service's selector carries in-cluster clients. A deploy, a canary step and a rollback must move
both, or the two disagree about which release is live.

- Reading: the weights (and so the live colour) come from the first router, the one users reach;
  members are every router's, so a colour gains traffic only when it is healthy on all of them
  (its ALB targets and its pods).
- Applying: the first router takes the new weights; each follower then takes them too, or, when
  it cannot split (a Service without an HTTPRoute), all of the traffic for the colour with the
  larger share. A follower that disagrees with the first router is brought back in line by the
  next apply, even when the first router's weights are already right. A follower that does not
  exist yet (a Service before the first release creates it) has nothing to follow and is left
  alone: returning the traffic after a failed first release must not fail on it.

Plain Python: no Ansible imports.
"""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    TrafficBackend,
    TrafficError,
    TrafficState,
    all_to,
)


class Composite(TrafficBackend):
    """The first router leads; the others follow its weights."""

    name = "composite"
    OPTIONS = {
        "routers": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "backend": {"type": "str", "required": True},
                "options": {"type": "dict", "default": {}},
            },
        },
    }

    def __init__(self, *, routers, backends=None):
        """`routers`: [{backend, options}, ...], the first one leading. `backends` (tests) gives
        already-built backend objects instead."""
        if backends is None:
            from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import build_backend

            if not routers:
                raise TrafficError("a composite router needs at least one router")
            backends = [build_backend(r["backend"], r.get("options") or {}) for r in routers]
        self.routers: list[TrafficBackend] = list(backends)
        self._states: list[TrafficState] = []

    def read(self) -> TrafficState:
        self._states = [r.read() for r in self.routers]
        lead = self._states[0]
        members = [m for s in self._states for m in s.members]
        # at an even split the lead (an ALB) cannot say which colour is the baseline; a follower
        # that is all-or-nothing (the Service selector) still can
        tie = next((st.tie_breaker for st in self._states if st.tie_breaker is not None), None)
        return TrafficState(weights=dict(lead.weights), members=members, tie_breaker=tie)

    @staticmethod
    def _follow(router: TrafficBackend, state: TrafficState, weights: dict[str, int]) -> dict[str, int]:
        """What a follower should be told for the lead's `weights` (all of them: the merged split)."""
        if not router.exists:
            return {}
        if router.can_split:
            return {c: w for c, w in weights.items() if state.weights.get(c) != w}
        live = TrafficState(weights=weights).live_colour
        if live is None:
            return {}
        wanted = all_to(live)
        return wanted if state.live_colour != live else {}

    def plan(self, current: TrafficState, wanted: dict[str, int]) -> dict[str, int]:
        changes = self.routers[0].plan(self._states[0], wanted) if self._states else dict(wanted)
        if changes:
            return changes
        merged = {**current.weights, **wanted}
        for router, state in zip(self.routers[1:], self._states[1:], strict=True):
            if self._follow(router, state, merged):
                return dict(wanted)
        return {}

    def apply(self, weights: dict[str, int]) -> None:
        states = self._states or [r.read() for r in self.routers]
        merged = {**states[0].weights, **{c: int(w) for c, w in weights.items()}}
        lead_plan = self.routers[0].plan(states[0], merged)
        if lead_plan:
            self.routers[0].apply(lead_plan)
        for router, state in zip(self.routers[1:], states[1:], strict=True):
            follow = self._follow(router, state, merged)
            if follow:
                router.apply(follow)

    def close(self) -> None:
        for router in self.routers:
            router.close()
