"""The shipped canary strategy, in one place for the module and the benchmark.

* **Plan** (before any change): from the live colour's recent traffic, estimate how long the
  sequential judge needs at each requested weight (``sequential.requests_to_decide``). A step that
  cannot decide within the cap is not run: the first step is raised to the smallest weight that
  can (up to ``max_first_step``); when none can, the plan refuses with "insufficient traffic".
* **Watch** one step: look at every scrape after the warm-up, stop at the first boundary crossed
  (fail or pass), or at the cap (no decision: the caller rolls back; a canary is never promoted
  without a pass). A canary restart or a target down fails the step at once.
* **After the switch** (the 100 % step): the new colour at all of the traffic against the old
  colour's counts from the last step; a fail rolls back, a pass or the cap ends the watch.

The data comes from a ``Source`` (Prometheus in the module, a simulation in the benchmark) and
time from a clock and a sleep function, so the benchmark runs this code on a virtual clock.
Plain Python; no Ansible imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import sequential as sq

DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_STEP_CAP = 600.0  # s: the longest a step may watch before it gives up
DEFAULT_MAX_FIRST_STEP = 50  # %: the largest first step the plan may raise to
DEFAULT_POST_SWITCH = 60.0  # s: the watch after the switch
DEFAULT_BUDGET = 600.0  # s: the canary steps together (the spec's deploy in under 10 min)
ROUTE_MIN_SHARE = 0.1  # routes under 10 % of the requests are judged together as "other"


LB_METRIC = "lb_error_ratio"


def default_metrics(lb: bool = False) -> list[sq.SequentialMetric]:
    """The reference app's metrics: +2 points of errors, +20 % p95, +50 % p99 (the tail), each
    per route; with `lb`, also +2 points of failures the load balancer saw on the canary's servers
    (5xx, refused connections, aborted or timed-out responses: also those the app never counts).
    Queries are the Prometheus source's (see PrometheusSource)."""
    return [*_app_metrics(), *([_lb_metric()] if lb else [])]


def _lb_metric() -> sq.SequentialMetric:
    return sq.SequentialMetric(
        name=LB_METRIC,
        kind="ratio",
        tolerance_abs=0.02,
        by_route=False,
        source="lb",
        unit="ratio",
        description="share of the canary servers' requests that failed as the load balancer saw them "
        "(5xx, connection errors, aborted or timed-out responses), over all routes",
    )


def _app_metrics() -> list[sq.SequentialMetric]:
    return [
        sq.SequentialMetric(
            name="error_ratio",
            kind="ratio",
            tolerance_abs=0.02,
            unit="ratio",
            description="share of requests answered 5xx",
        ),
        sq.SequentialMetric(
            name="latency_p95",
            kind="quantile",
            quantile=0.95,
            tolerance_rel=0.2,
            tolerance_abs=0.005,
            unit="s",
            description="95th percentile request latency, from the histogram's bucket counts",
        ),
        sq.SequentialMetric(
            name="latency_p99",
            kind="quantile",
            quantile=0.99,
            tolerance_rel=0.5,
            tolerance_abs=0.01,
            unit="s",
            description="99th percentile request latency (the tail), from the bucket counts",
        ),
    ]


class StrategyError(ValueError):
    """The strategy cannot run as asked (bad settings, or too little traffic to decide)."""


@dataclass
class Snapshot:
    """What a source saw between two instants. ``data`` maps each metric to its counts with the
    routes on the last leading axis; ``routes`` names them; ``restarts`` counts canary process
    restarts and scrapes that found a canary target down; ``rate`` is the total requests/s of
    both colours."""

    data: dict
    routes: list[str]
    restarts: int = 0
    rate: float = math.nan
    canary_requests: float = 0.0
    baseline_requests: float = 0.0


class Source(Protocol):
    def snapshot(self, since: float, until: float) -> Snapshot: ...


@dataclass
class Look:
    at: float
    decision: str
    canary_requests: float
    detail: dict = field(default_factory=dict)


@dataclass
class StepOutcome:
    verdict: str  # pass, fail, inconclusive
    reason: str
    started: float
    decided_at: float
    looks: list[Look]
    failed_metrics: list[str] = field(default_factory=list)

    @property
    def took(self) -> float:
        return self.decided_at - self.started

    def metrics(self) -> list[dict]:
        """Per metric at the last look: its classification over the routes and the worst route's
        numbers (the failing one, else the one nearest its tolerance)."""
        if not self.looks:
            return []
        out = []
        order = {"fail": 0, "nodata": 1, "continue": 2, "pass": 3}
        for name, per in (self.looks[-1].detail.get("metrics") or {}).items():

            def nearness(item):
                v = item[1]
                ratio = (v["upper"] / v["tolerance"]) if v["upper"] is not None and v["tolerance"] else math.inf
                return (order[v["decision"]], -ratio)

            route, worst = min(per.items(), key=nearness)
            base, can = worst.get("baseline"), worst.get("canary")
            effect = None if base is None or can is None else round(can - base, 6)
            out.append(
                {
                    "name": name,
                    "classification": {"continue": "inconclusive"}.get(worst["decision"], worst["decision"]),
                    "route": route,
                    "effect": effect,
                    "effect_relative": None if effect is None or not base else round(effect / base, 4),
                    "lower": worst["lower"],
                    "upper": worst["upper"],
                    "tolerance": worst["tolerance"],
                    "reason": f"{route}: {worst['decision']} (bounds {worst['lower']} .. {worst['upper']}, "
                    f"tolerance {worst['tolerance']})",
                }
            )
        return out

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "metrics": self.metrics(),
            "reason": self.reason,
            "started": round(self.started, 3),
            "decided_at": round(self.decided_at, 3),
            "took": round(self.took, 3),
            "looks": len(self.looks),
            "failed_metrics": self.failed_metrics,
            "history": [
                {"at": round(lk.at, 3), "decision": lk.decision, "canary_requests": lk.canary_requests, **lk.detail}
                for lk in self.looks
            ],
        }


def _num(x):
    v = float(np.asarray(x))
    return round(v, 6) if math.isfinite(v) else None


def _describe(judge: sq.SequentialJudge, looks: dict, routes: list[str]) -> tuple[dict, list[str]]:
    """Per metric (and route) the bounds and decision, JSON-safe; and the failed names."""
    out, failed = {}, []
    for m in judge.metrics:
        lk = looks[m.name]
        dec = np.atleast_1d(lk.decision)
        lo, hi = np.atleast_1d(lk.lower), np.atleast_1d(lk.upper)
        tol = np.broadcast_to(np.atleast_1d(lk.tolerance), dec.shape)
        base = np.broadcast_to(np.atleast_1d(np.asarray(lk.baseline, float)), dec.shape)
        can = np.broadcast_to(np.atleast_1d(np.asarray(lk.canary, float)), dec.shape)
        names = routes if (m.by_route and len(routes) == dec.size) else ["all"] * dec.size
        per = {}
        if lk.pooled is not None:
            pl = lk.pooled
            d = sq.DECISIONS[int(np.asarray(pl.decision))]
            per["all routes"] = {
                "decision": d,
                "lower": _num(pl.lower),
                "upper": _num(pl.upper),
                "tolerance": round(float(np.asarray(pl.tolerance)), 6),
                "baseline": _num(pl.baseline),
                "canary": _num(pl.canary),
            }
            if d == "fail":
                failed.append(f"{m.name} (all routes)")
        for i, r in enumerate(names):
            d = sq.DECISIONS[int(dec[i])]
            per[r] = {
                "decision": d,
                "lower": None if not np.isfinite(lo[i]) else round(float(lo[i]), 6),
                "upper": None if not np.isfinite(hi[i]) else round(float(hi[i]), 6),
                "tolerance": round(float(tol[i]), 6),
                "baseline": None if not np.isfinite(base[i]) else round(float(base[i]), 6),
                "canary": None if not np.isfinite(can[i]) else round(float(can[i]), 6),
            }
            if d == "fail":
                failed.append(m.name if r == "all" else f"{m.name} ({r})")
        out[m.name] = per
    return out, failed


def watch_step(
    judge: sq.SequentialJudge,
    source: Source,
    started: float,
    *,
    cap: float = DEFAULT_STEP_CAP,
    look_every: float,
    warmup: float = 0.0,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    pass_ends: bool = True,
):
    """Look every `look_every` seconds from `started + warmup` until a boundary or `cap`.

    With ``pass_ends`` false (the watch after the switch) only a fail ends it early; reaching the
    cap is then a pass. Returns a StepOutcome. A source whose snapshots carry a leading axis of
    independent runs (the benchmark's draws) gets a VectorOutcome instead: the same rules applied
    to every run at once, each stopping at its own first boundary."""
    if look_every <= 0:
        raise StrategyError(f"look_every must be positive, not {look_every!r}")
    if cap <= warmup:
        raise StrategyError(f"the step's cap ({cap:g} s) must be longer than its warm-up ({warmup:g} s)")
    since = started + warmup
    next_look = since + look_every
    looks: list[Look] = []
    verdict = decided_at = reasons = failed_names = None
    scalar = True
    while True:
        now = clock()
        if now < next_look:
            sleep(next_look - now)
            now = clock()
        snap = source.snapshot(since, now)
        restarts = np.asarray(snap.restarts)
        decision, per_metric = judge.look(snap.data, routes=len(snap.routes))
        decision = np.where(restarts > 0, sq.FAIL, decision).astype(np.int8)
        if verdict is None:
            scalar = decision.ndim == 0
            verdict = np.full(decision.shape, -1, dtype=np.int8)  # -1: still watching
            decided_at = np.full(decision.shape, np.nan)
            reasons = np.full(decision.shape, "", dtype=object)
            failed_names = np.empty(decision.shape, dtype=object)
        open_ = verdict < 0
        ended = open_ & ((decision == sq.FAIL) | ((decision == sq.PASS) & pass_ends))
        verdict[ended] = decision[ended]
        decided_at[ended] = now
        at_cap = now - started >= cap
        if scalar:
            detail, failed = _describe(judge, per_metric, snap.routes)
            extra = {"metrics": detail}
            if restarts > 0:
                failed = ["restarts"]
                extra["restarts"] = int(restarts)
            looks.append(Look(now, sq.DECISIONS[int(decision)], float(snap.canary_requests), extra))
            n = float(snap.canary_requests)
            if bool(ended):
                failed_names[()] = failed
                if decision == sq.FAIL and restarts > 0:
                    reasons[()] = (
                        f"the canary restarted or a canary target was down ({int(restarts)} time(s)) "
                        f"in {now - started:.0f} s"
                    )
                elif decision == sq.FAIL:
                    reasons[()] = f"worse beyond tolerance: {', '.join(failed)} after {n:.0f} canary requests"
                else:
                    reasons[()] = f"every metric bounded within tolerance after {n:.0f} canary requests"
            elif at_cap:
                if not pass_ends:
                    reasons[()] = f"no metric worse beyond tolerance in {now - started:.0f} s"
                else:
                    undecided = [
                        name if r == "all" else f"{name} ({r})"
                        for name, per in detail.items()
                        for r, v in per.items()
                        if v["decision"] in ("continue", "nodata")
                    ]
                    why = "no data for" if decision == sq.NODATA else "still undecided:"
                    reasons[()] = (
                        f"no decision within the step's cap of {cap:g} s ({n:.0f} canary requests); "
                        f"{why} {', '.join(undecided) or 'everything'}"
                    )
                failed_names[()] = []
        if at_cap:
            still = verdict < 0
            verdict[still] = sq.PASS if not pass_ends else sq.CONTINUE  # CONTINUE here: no decision
            decided_at[still] = now
        if not np.any(verdict < 0):
            break
        next_look += look_every
        while next_look <= now:
            next_look += look_every
    names = {sq.PASS: "pass", sq.FAIL: "fail", sq.CONTINUE: "inconclusive"}
    if scalar:
        return StepOutcome(
            names[int(verdict)], str(reasons[()]), started, float(decided_at), looks, list(failed_names[()] or [])
        )
    return VectorOutcome(verdict=verdict, decided_at=decided_at, started=started)


@dataclass
class VectorOutcome:
    """watch_step over many independent runs: per run the verdict (sq.PASS, sq.FAIL, or
    sq.CONTINUE for no decision within the cap) and when it was reached."""

    verdict: np.ndarray
    decided_at: np.ndarray
    started: float


@dataclass
class Plan:
    steps: list[int]
    estimates: dict  # weight -> seconds the judge needs there (inf: cannot decide)
    notes: list[str]
    rate: float

    def as_dict(self) -> dict:
        return {
            "steps": self.steps,
            "rate": round(self.rate, 3),
            "estimates": {str(w): (None if not math.isfinite(s) else round(s, 1)) for w, s in self.estimates.items()},
            "notes": self.notes,
        }


def plan_steps(
    judge: sq.SequentialJudge,
    live: Snapshot,
    steps: list[int],
    *,
    cap: float = DEFAULT_STEP_CAP,
    max_first_step: int = DEFAULT_MAX_FIRST_STEP,
    budget: float = DEFAULT_BUDGET,
    margin: float = 1.5,
) -> Plan:
    """The steps to run, from the live colour's traffic (`live`: its counts in the baseline
    fields, its rate). A step is kept when `margin` x the estimated time fits in `cap`; then, while
    the kept steps together need more than `budget`, the smallest step is dropped (the thinnest
    slice costs the most time), as long as the first step stays at most `max_first_step`. A plan
    that cannot fit the budget that way keeps its shortest form, and a note says so."""
    if not steps or steps[-1] != 100 or any(not 0 < w <= 100 for w in steps) or steps != sorted(set(steps)):
        raise StrategyError(f"canary steps must rise strictly and end at 100, not {steps}")
    if not 0 < max_first_step < 100:
        raise StrategyError(f"max_first_step must lie between 1 and 99, not {max_first_step}")
    if math.isnan(budget) or budget <= 0:
        raise StrategyError(f"the plan's budget must be above 0 s, not {budget}")
    rate = float(live.rate)
    estimates = {}
    for w in sorted(set([*steps[:-1], max_first_step])):
        if not math.isfinite(rate) or rate <= 0:
            estimates[w] = math.inf
            continue
        n = sq.requests_to_decide(judge, live.data, w / 100.0, routes=len(live.routes))
        estimates[w] = n / (rate * w / 100.0)
    fits = [w for w, s in estimates.items() if margin * s <= cap]
    canary = steps[:-1]
    if not fits:
        best = min(estimates.values())
        need = (
            "no traffic reached the live colour"
            if not math.isfinite(best)
            else (f"the judge needs about {best:.0f} s even at {max_first_step} %")
        )
        raise StrategyError(
            f"insufficient traffic to judge a canary: {rate:.2f} requests/s, and {need} (the cap is {cap:g} s a "
            "step); use deploy_strategy=blue_green, wait for more traffic, or raise canary_step_cap"
        )
    if all(margin * estimates[w] <= cap for w in canary):
        kept = list(canary)
    else:
        first = min(fits)
        kept = [first, *(w for w in canary if w > first and margin * estimates[w] <= cap)]

    def total(ws):
        return sum(margin * estimates[w] for w in ws)

    over = total(kept) > budget
    while total(kept) > budget and len(kept) > 1 and kept[1] <= max_first_step:
        kept = kept[1:]
    notes = []
    if kept != canary:
        dropped = [w for w in canary if w not in kept]
        why = f"cap {cap:g} s a step" + (f", {budget:g} s for the steps together" if over else "")
        notes.append(
            f"at {rate:.2f} requests/s the judge needs about "
            + ", ".join(f"{estimates[w]:.0f} s at {w} %" for w in canary if math.isfinite(estimates[w]))
            + f" ({why}): steps {', '.join(f'{w} %' for w in dropped)} skipped; running {[*kept, 100]}"
        )
    if total(kept) > budget:
        notes.append(
            f"the steps {kept} need about {total(kept) / margin:.0f} s, more than the {budget:g} s budget: expect "
            "a long deploy (a larger canary_max_first_step or blue_green is quicker)"
        )
    return Plan([*kept, 100], estimates, notes, rate)
