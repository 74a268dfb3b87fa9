"""The traffic interface: read and set how much traffic each colour (blue, green) receives.

One small class per router implements it (HAProxy runtime API, Kubernetes Service/route, ALB
forward weights). The `traffic` module and the playbooks only ever see this interface, so a
deploy never knows which router it drives. The live colour is always read from the router,
never from a state file.

Weights are per colour, 0..100 (each colour's share is its weight over the sum), so
{"blue": 95, "green": 5} sends 5 % to green on every router.

Plain Python: no Ansible imports, so unit tests reach it directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

COLOURS = ("blue", "green")


class TrafficError(Exception):
    """A router could not be read or changed. The message is meant for the operator."""


@dataclass(frozen=True)
class Member:
    """One thing traffic goes to: an HAProxy server, a pod, an ALB target."""

    name: str
    colour: str
    healthy: bool
    weight: int = 0
    detail: str = ""


@dataclass
class TrafficState:
    """What the router does right now."""

    weights: dict[str, int]
    members: list[Member] = field(default_factory=list)
    #: the colour a router itself names when the weights are even (a Service selector); else None
    tie_breaker: str | None = None

    @property
    def live_colour(self) -> str | None:
        """The colour with the larger share; None when nothing gets traffic or the split is even."""
        ranked = sorted(self.weights.items(), key=lambda kv: kv[1], reverse=True)
        if not ranked or ranked[0][1] == 0:
            return None
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            return None
        return ranked[0][0]

    @property
    def idle_colour(self) -> str:
        """Where a release goes: the colour that is not live. With nothing live (a router that
        has never served), the first colour; during a split, the smaller share."""
        live = self.live_colour
        if live is None:
            live = self.tie_breaker
        if live is None:
            ranked = sorted(COLOURS, key=lambda c: (-self.weights.get(c, 0), COLOURS.index(c)))
            return ranked[1] if self.weights.get(ranked[0], 0) > 0 else COLOURS[0]
        return other_colour(live)

    @property
    def rollback_colour(self) -> str | None:
        """Where a rollback sends traffic: during a split (an interrupted canary) the baseline,
        the larger share (on an even split the colour the router itself names); otherwise the
        colour that is not live. None when the router has never served."""
        live = self.live_colour or self.tie_breaker
        if live is None:
            return None
        return live if self.split else other_colour(live)

    @property
    def split(self) -> bool:
        """True when more than one colour receives traffic (a canary in progress)."""
        return sum(1 for w in self.weights.values() if w > 0) > 1

    def share(self, colour: str) -> float:
        total = sum(self.weights.values())
        return self.weights.get(colour, 0) / total if total else 0.0

    def unhealthy(self, colour: str) -> list[Member]:
        return [m for m in self.members if m.colour == colour and not m.healthy]

    def healthy(self, colour: str) -> list[Member]:
        return [m for m in self.members if m.colour == colour and m.healthy]

    def as_dict(self) -> dict:
        return {
            "weights": dict(self.weights),
            "live_colour": self.live_colour,
            "idle_colour": self.idle_colour,
            "rollback_colour": self.rollback_colour,
            "split": self.split,
            "shares": {c: round(self.share(c), 4) for c in self.weights},
            "members": [
                {"name": m.name, "colour": m.colour, "healthy": m.healthy, "weight": m.weight, "detail": m.detail}
                for m in self.members
            ],
        }


def other_colour(colour: str) -> str:
    """The colour that is not `colour`."""
    if colour not in COLOURS:
        raise TrafficError(f"unknown colour {colour!r}; colours are {list(COLOURS)}")
    return COLOURS[1 - COLOURS.index(colour)]


def all_to(colour: str) -> dict[str, int]:
    """Weights that send every request to `colour`."""
    other_colour(colour)  # validates
    return {c: (100 if c == colour else 0) for c in COLOURS}


def check_weights(weights: dict[str, int]) -> dict[str, int]:
    """Validate requested weights: known colours, integers 0..100, at least one above zero."""
    unknown = sorted(set(weights) - set(COLOURS))
    if unknown:
        raise TrafficError(f"unknown colour(s) {unknown}; colours are {list(COLOURS)}")
    clean = {}
    for colour, weight in weights.items():
        try:
            value = int(weight)
        except (TypeError, ValueError):
            raise TrafficError(f"weight for {colour} must be an integer 0..100, got {weight!r}") from None
        if not 0 <= value <= 100:
            raise TrafficError(f"weight for {colour} must be 0..100, got {value}")
        clean[colour] = value
    if clean and not any(clean.values()):
        raise TrafficError("at least one colour must keep a weight above 0, or nothing is served")
    return clean


class TrafficBackend(ABC):
    """A router. Subclasses take their own options (see OPTIONS) in __init__."""

    #: name used by the module's `backend` option
    name: str = ""
    #: Ansible argument-spec style description of this backend's `options`
    OPTIONS: dict = {}

    @abstractmethod
    def read(self) -> TrafficState:
        """Return the current weights and member health, straight from the router."""

    @abstractmethod
    def apply(self, weights: dict[str, int]) -> None:
        """Set the given colours' weights (others unchanged). Must be as close to atomic as the
        router allows, and must not drop in-flight requests."""

    #: False when the router's object does not exist yet (a Service before the first release):
    #: there is nothing to move, so a composite router leaves it alone. Set by read().
    exists: bool = True

    #: True when the router can hold a weighted split; an all-or-nothing router (a Service
    #: selector without an HTTPRoute) is told only the larger share.
    can_split: bool = True

    def plan(self, current: TrafficState, wanted: dict[str, int]) -> dict[str, int]:
        """The subset of `wanted` that differs from `current` (empty: nothing to do)."""
        return {c: w for c, w in wanted.items() if current.weights.get(c) != w}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, if any."""
