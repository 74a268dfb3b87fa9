"""Shift traffic between colours on any backend, refusing to send traffic where it would fail.

This is the whole decision the `traffic` module makes; the module only parses arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    COLOURS,
    TrafficBackend,
    TrafficError,
    TrafficState,
    all_to,
    check_weights,
)

#: what `send_all_to` takes besides a colour: the router's own answer, read in the same call
TARGETS = (*COLOURS, "idle", "rollback")


def resolve_target(state: TrafficState, target: str) -> str:
    """The colour `target` names on the router as it is now: a colour itself, or `idle` (where a
    release goes) or `rollback` (where a rollback goes: the baseline during a split, else the
    colour that is not live)."""
    if target in COLOURS:
        return target
    if target == "idle":
        return state.idle_colour
    if target == "rollback":
        if state.rollback_colour is None:
            raise TrafficError(f"the router has never served ({state.weights}): there is nothing to roll back to")
        return state.rollback_colour
    raise TrafficError(f"send_all_to must be one of {list(TARGETS)}, got {target!r}")


def readiness_problem(state: TrafficState, colour: str, min_healthy_ratio: float) -> str | None:
    """Why `colour` must not receive traffic yet, or None when it may."""
    members = [m for m in state.members if m.colour == colour]
    if not members:
        return f"{colour} has no members on the router"
    healthy = [m for m in members if m.healthy]
    if len(healthy) < max(1, min_healthy_ratio * len(members)):
        sick = ", ".join(f"{m.name} ({m.detail or 'unhealthy'})" for m in members if not m.healthy)
        return f"{colour} is not healthy on the router: {len(healthy)}/{len(members)} healthy; {sick}"
    return None


def shift_traffic(
    backend: TrafficBackend,
    weights: dict[str, int] | None,
    *,
    require_healthy: bool = True,
    min_healthy_ratio: float = 1.0,
    wait_healthy_timeout: float = 0.0,
    check_mode: bool = False,
    send_all_to: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 0.25,
) -> dict:
    """Read the router and, when `weights` (or `send_all_to`) are given, move it there.

    `send_all_to` is a colour, or `idle` / `rollback` resolved against the state read here, so
    reading, deciding and switching happen in one call with no round trip to the playbook in
    between (a rollback's only pre-switch work besides the lock).
    A colour whose weight rises must pass the health requirement first; with
    `wait_healthy_timeout` the router is polled until it does. The moment it passes is the
    decision (`decided_at`): the change is applied right after it.
    Returns a dict with changed, before, after, live_colour and the time the change took.
    """
    if weights is not None and send_all_to is not None:
        raise TrafficError("give either weights or send_all_to, not both")
    before = backend.read()
    result = {
        "changed": False,
        "before": before.as_dict(),
        "after": before.as_dict(),
        "live_colour": before.live_colour,
        "idle_colour": before.idle_colour,
        "rollback_colour": before.rollback_colour,
    }
    if send_all_to is not None:
        result["to_colour"] = resolve_target(before, send_all_to)
        weights = all_to(result["to_colour"])
    if weights is None:
        return result
    wanted = check_weights(weights)
    plan = backend.plan(before, wanted)
    if not plan:
        return result

    if require_healthy:
        gaining = [c for c, w in plan.items() if w > 0]
        deadline = clock() + wait_healthy_timeout
        state = before
        while True:
            problems = [p for p in (readiness_problem(state, c, min_healthy_ratio) for c in gaining) if p]
            if not problems:
                break
            if clock() >= deadline:
                raise TrafficError("refusing to send traffic: " + "; ".join(problems))
            sleep(poll)
            state = backend.read()

    result["changed"] = True
    result["decided_at"] = time.time()
    if check_mode:
        after = dict(before.weights)
        after.update(plan)
        result["after"] = TrafficState(weights=after, members=before.members).as_dict()
        result["live_colour"] = result["after"]["live_colour"]
        return result

    started = clock()
    backend.apply(plan)
    result["apply_seconds"] = round(clock() - started, 4)
    result["applied_at"] = time.time()
    after_state = backend.read()
    mismatch = {c: after_state.weights.get(c) for c, w in plan.items() if after_state.weights.get(c) != w}
    if mismatch:
        raise TrafficError(f"router did not take the new weights: wanted {plan}, it reports {mismatch}")
    result["after"] = after_state.as_dict()
    result["live_colour"] = after_state.live_colour
    return result
