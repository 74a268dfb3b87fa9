"""What canary_evaluate does in its modes `plan` and `sequential`, as plain Python.

* ``plan``: before any change, read the scrape interval and the live colour's traffic from
  Prometheus and return the steps the sequential judge can decide (strategy.plan_steps).
* ``sequential``: watch one step from its start, at every scrape, until a boundary or the cap
  (strategy.watch_step); with ``after_switch`` the new colour at 100 % against the old colour's
  counts from the last step.

No Ansible imports; the module maps its options onto these functions.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import sequential as sq
from ansible_collections.free4allweb.devops.plugins.module_utils.canary import strategy as st
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.live import PrometheusSource, scrape_interval
from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
    parse_duration,
    parse_time,
)

_JOB = re.compile(r'(?:^|,)\s*job\s*=\s*"([^"]*)"')


def selector_job(selector) -> str | None:
    """The `job` a selector names exactly (dict key or job="..." matcher), if any."""
    if isinstance(selector, dict):
        job = selector.get("job")
        return None if job is None else str(job)
    m = _JOB.search(str(selector or "").strip().strip("{}"))
    return m.group(1) if m else None


def look_interval(client: PrometheusClient, canary_selector, given) -> tuple[float, float | None]:
    """(seconds between looks, the job's scrape interval or None when unknown).

    The judge looks once per scrape: asked more often it would see the same samples again.
    Given explicitly, it must not be shorter than the scrape interval when that can be read."""
    job = selector_job(canary_selector)
    scrape = scrape_interval(client, job) if job else None
    if given in (None, ""):
        if scrape is None:
            raise ValueError(
                "look_interval is required when the canary selector names no job: the judge cannot read "
                "the scrape interval to look once per scrape"
            )
        return scrape, scrape
    every = parse_duration(given)
    if every <= 0:
        raise ValueError(f"look_interval must be positive, not {given!r}")
    if scrape is not None and every < scrape:
        raise ValueError(
            f"look_interval {given} is shorter than the scrape interval of job {job!r} ({scrape:g} s): "
            "looks in between see no new samples"
        )
    return every, scrape


def check_window_step(client: PrometheusClient, canary_selector, step_s: float) -> list[str]:
    """For the fixed-window judge: refuse a step under two scrape intervals (each per-step rate
    would hold fewer than two samples). Returns notes when the interval cannot be read."""
    job = selector_job(canary_selector)
    if not job:
        return ["the canary selector names no job: the step was not checked against the scrape interval"]
    try:
        scrape = scrape_interval(client, job)
    except PrometheusError as e:
        return [f"the step was not checked against the scrape interval: {e}"]
    if step_s < 2 * scrape:
        raise ValueError(
            f"step {step_s:g} s is under two scrape intervals of job {job!r} ({scrape:g} s each): each per-step "
            f"window would hold fewer than two samples and the latency queries come back empty; use a step of "
            f"at least {2 * scrape:g} s"
        )
    return []


def check_lb_series(source: PrometheusSource, live: st.Snapshot) -> None:
    """Before any change: the load balancer's counters exist for both colours' servers (the
    canary's are there at weight 0: HAProxy exports every server it knows)."""
    counts = live.data[st.LB_METRIC]
    for colour, total in (("baseline", counts.baseline_total), ("canary", counts.canary_total)):
        if not math.isfinite(float(total)):
            raise st.StrategyError(
                f"Prometheus has no load balancer counters for the {colour}'s servers "
                f"({source.lb_selectors[colour]}): is the load balancer scraped, and does the selector name its "
                "servers? The judge would have no data for lb_error_ratio and could never pass a step"
            )


def plan(
    client: PrometheusClient,
    *,
    baseline_selector,
    canary_selector,
    steps: list[int],
    lookback: str = "5m",
    cap: float = st.DEFAULT_STEP_CAP,
    max_first_step: int = st.DEFAULT_MAX_FIRST_STEP,
    budget: float = st.DEFAULT_BUDGET,
    alpha: float = 0.01,
    fail_fraction: float = 0.5,
    route_min_share: float = st.ROUTE_MIN_SHARE,
    given_look_interval=None,
    lb_selectors: dict | None = None,
    now: float | None = None,
) -> dict:
    every, scrape = look_interval(client, canary_selector, given_look_interval)
    now = time.time() if now is None else now
    window = parse_duration(lookback)
    if window < 2 * every:
        raise ValueError(f"lookback {lookback} is under two looks ({every:g} s each)")
    metrics = st.default_metrics(lb=bool(lb_selectors))
    source = PrometheusSource(
        client, baseline_selector, canary_selector, metrics, route_min_share=route_min_share, lb_selectors=lb_selectors
    )
    live = source.snapshot(now - window, now)
    if lb_selectors:
        check_lb_series(source, live)
    # the rate the first step will see: the higher of the window's and the last three looks' (at least 15 s; a
    # colour that went live within the window, after another deploy, is not taken for a quiet one)
    recent_s = max(3 * every, 15.0)
    rate_window = window
    if recent_s < window:
        recent = source.snapshot(now - recent_s, now)
        if math.isfinite(recent.rate) and recent.rate > live.rate:
            live = dataclasses.replace(live, rate=recent.rate)
            rate_window = recent_s
    if not live.baseline_requests > 0:
        raise st.StrategyError(
            f"Prometheus counted no requests for the live colour ({source.selectors['baseline']}) in the last "
            f"{lookback}: the judge would have no baseline. Is the job scraped, and does the live colour serve?"
        )
    judge = sq.SequentialJudge(metrics, alpha=alpha, fail_fraction=fail_fraction, steps=len(steps))
    p = st.plan_steps(judge, live, list(steps), cap=cap, max_first_step=max_first_step, budget=budget)
    # the alpha is split over the steps that run: re-plan with the right count when it changed
    if len(p.steps) != len(steps):
        judge = sq.SequentialJudge(metrics, alpha=alpha, fail_fraction=fail_fraction, steps=len(p.steps))
        again = st.plan_steps(judge, live, p.steps, cap=cap, max_first_step=max_first_step, budget=budget)
        again.notes = [*p.notes, *again.notes]
        p = again
    out = p.as_dict()
    out.update(
        {
            "look_interval": every,
            "scrape_interval": scrape,
            "routes": live.routes,
            "rate_window": rate_window,
            "judged_metrics": [m.name for m in metrics],
            "requested_steps": list(steps),
            "changed_steps": p.steps != list(steps),
        }
    )
    return out


def sequential(
    client: PrometheusClient,
    *,
    baseline_selector,
    canary_selector,
    start,
    cap: float = st.DEFAULT_STEP_CAP,
    given_look_interval=None,
    warmup=None,
    judged_steps: int = 4,
    alpha: float = 0.01,
    fail_fraction: float = 0.5,
    route_min_share: float = st.ROUTE_MIN_SHARE,
    after_switch: bool = False,
    baseline_start=None,
    baseline_end=None,
    lb_selectors: dict | None = None,
    clock=time.time,
    sleep=time.sleep,
) -> dict:
    every, scrape = look_interval(client, canary_selector, given_look_interval)
    started = parse_time(start, clock())
    warm = every if warmup in (None, "") else parse_duration(warmup)
    window = None
    if after_switch:
        if baseline_start is None or baseline_end is None:
            raise ValueError("after_switch needs baseline_start and baseline_end (the last step's window)")
        window = (parse_time(baseline_start, clock()), parse_time(baseline_end, clock()))
        if window[1] - window[0] < 2 * every:
            raise ValueError(
                f"the baseline window ({window[1] - window[0]:.1f} s) is under two looks ({every:g} s each)"
            )
    metrics = st.default_metrics(lb=bool(lb_selectors))
    judge = sq.SequentialJudge(metrics, alpha=alpha, fail_fraction=fail_fraction, steps=judged_steps)
    source = PrometheusSource(
        client,
        baseline_selector,
        canary_selector,
        metrics,
        route_min_share=route_min_share,
        baseline_window=window,
        lb_selectors=lb_selectors,
    )
    outcome = st.watch_step(
        judge,
        source,
        started,
        cap=cap,
        look_every=every,
        warmup=warm,
        clock=clock,
        sleep=sleep,
        pass_ends=not after_switch,
    )
    out = outcome.as_dict()
    out.update(
        {
            "look_interval": every,
            "scrape_interval": scrape,
            "alpha_per_test": judge.alpha_per_test(),
            "selectors": dict(source.selectors),
            "queries_sent": len(source.queries),
        }
    )
    if not math.isfinite(out["took"]):
        out["took"] = None
    return out
