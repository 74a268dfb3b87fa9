"""The weighted scorer and the threshold classifier that turn metric results into one verdict.

Score: the weighted share of metrics that passed, 0..100 (failed and undecided metrics count 0).
Verdict, in this order:

1. **fail** when a critical metric failed, or when the score stays below `marginal_score` even if
   every undecided metric were to pass;
2. **inconclusive** when any metric is undecided (thin, missing or not yet conclusive data):
   missing or thin data never produce a pass;
3. **pass** when the score reaches `pass_score`, **marginal** when it reaches `marginal_score`,
   **fail** below that.

Plain Python; no Ansible imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.free4allweb.devops.plugins.module_utils.canary.classifiers import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    MetricResult,
)

VERDICTS = ("pass", "marginal", "fail", "inconclusive")


@dataclass
class Verdict:
    verdict: str
    score: float
    score_range: tuple[float, float]
    reason: str
    groups: dict = field(default_factory=dict)


def _score(results: list[MetricResult], count_undecided_as_pass: bool) -> float:
    total = sum(r.weight for r in results)
    if total <= 0:
        return 0.0
    good = sum(
        r.weight
        for r in results
        if r.classification == PASS or (count_undecided_as_pass and r.classification == INCONCLUSIVE)
    )
    return round(100.0 * good / total, 2)


def score(results: list[MetricResult], pass_score: float = 95.0, marginal_score: float = 75.0) -> Verdict:
    if not 0 <= marginal_score <= pass_score <= 100:
        raise ValueError("score thresholds must satisfy 0 <= marginal_score <= pass_score <= 100")
    scored = [r for r in results if r.classification in (PASS, FAIL, INCONCLUSIVE)]
    groups = {}
    for r in scored:
        groups.setdefault(r.group, []).append(r)
    group_scores = {g: _score(rs, False) for g, rs in groups.items()}
    if not scored:
        return Verdict("inconclusive", 0.0, (0.0, 0.0), "no metric could be judged", group_scores)
    low, high = _score(scored, False), _score(scored, True)
    critical_failed = [r.name for r in scored if r.critical and r.classification == FAIL]
    failed = [r.name for r in scored if r.classification == FAIL]
    undecided = [r.name for r in scored if r.classification == INCONCLUSIVE]
    if critical_failed:
        return Verdict("fail", low, (low, high), f"critical metric failed: {', '.join(critical_failed)}", group_scores)
    if high < marginal_score:
        return Verdict(
            "fail",
            low,
            (low, high),
            f"score {high:g} at best, below {marginal_score:g}; failed: {', '.join(failed)}",
            group_scores,
        )
    if undecided:
        return Verdict(
            "inconclusive",
            low,
            (low, high),
            f"not enough evidence yet for: {', '.join(undecided)}"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
            group_scores,
        )
    if low >= pass_score:
        why = f"all {len(scored)} metrics within tolerance" if not failed else f"score {low:g} >= {pass_score:g}"
        return Verdict("pass", low, (low, high), why, group_scores)
    if low >= marginal_score:
        return Verdict(
            "marginal",
            low,
            (low, high),
            f"score {low:g} below {pass_score:g}; failed: {', '.join(failed)}",
            group_scores,
        )
    return Verdict(
        "fail", low, (low, high), f"score {low:g} below {marginal_score:g}; failed: {', '.join(failed)}", group_scores
    )
