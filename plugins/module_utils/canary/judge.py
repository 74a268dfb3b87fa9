"""The canary judge: classify every metric, then score and classify the whole.

`alpha` is the false-fail budget for the whole evaluation: it is split evenly over the metrics
(Bonferroni), then over each metric's tests (centre and tail, each side for direction 'either').
`confidence` is the one-sided level of the bound that must sit within tolerance for a pass.

Plain Python on numpy and scipy; no Ansible imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.free4allweb.devops.plugins.module_utils.canary.classifiers import MetricResult, classify
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import MetricSpec
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.scorer import Verdict, score


@dataclass
class JudgeConfig:
    alpha: float = 0.01
    confidence: float = 0.975
    pass_score: float = 95.0
    marginal_score: float = 75.0
    fail_fraction: float = 0.5

    def __post_init__(self):
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must lie between 0 and 0.5, not {self.alpha}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must lie between 0.5 and 1, not {self.confidence}")
        if not 0 < self.fail_fraction <= 1:
            raise ValueError(f"fail_fraction must lie in (0, 1], not {self.fail_fraction}")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError("score thresholds must satisfy 0 <= marginal_score <= pass_score <= 100")


@dataclass
class JudgeResult:
    verdict: str
    score: float
    score_range: tuple[float, float]
    reason: str
    metrics: list[MetricResult]
    groups: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "score_range": list(self.score_range),
            "reason": self.reason,
            "groups": self.groups,
            "metrics": [m.as_dict() for m in self.metrics],
        }


def judge(specs: list[MetricSpec], data: dict, config: JudgeConfig | None = None) -> JudgeResult:
    """Judge the canary against the baseline. `data` maps each metric name to its data object."""
    config = config or JudgeConfig()
    if not specs:
        raise ValueError("no metrics to judge")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be unique: {names}")
    alpha_metric = config.alpha / len(specs)
    alpha_pass = 1.0 - config.confidence
    results = [classify(s, data.get(s.name), alpha_metric, alpha_pass, config.fail_fraction) for s in specs]
    v: Verdict = score(results, config.pass_score, config.marginal_score)
    return JudgeResult(v.verdict, v.score, v.score_range, v.reason, results, v.groups)
