#!/usr/bin/python
# Copyright: free4allweb platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: canary_evaluate
short_description: Judge a canary against its baseline from Prometheus metrics
version_added: "0.1.0"
description:
  - Queries Prometheus for each metric of the baseline and the canary over the same window and
    compares them statistically, then returns one verdict, V(pass), V(marginal), V(fail) or
    V(inconclusive), with a score from 0 to 100 and, per metric, the classification, effect
    size, bounds, p-value, sample counts and the reason.
  - Per-step series (for example a per-step p95 latency) are compared with the Mann-Whitney U
    test and the Hodges-Lehmann shift with its confidence bounds, plus a tail check on a high
    quantile. Ratios (for example the 5xx ratio) are judged from the counts, with Fisher's exact
    test and Newcombe's interval. Histograms are judged on the share of requests slower than the
    baseline's tail quantile, from the bucket counts.
  - A metric fails when its worsening is significant and its estimate exceeds O(fail_fraction) of
    the tolerance; it passes only when the upper confidence bound of the worsening is within the
    tolerance. Anything else, and any metric with missing or thin data, is inconclusive, and an
    inconclusive metric never lets the verdict be V(pass).
  - Any Prometheus error (unreachable, TLS, authentication, a rejected query) makes the task
    fail with a clear message. It never yields V(pass).
  - Runs on the controller (or wherever it is delegated) and needs numpy, scipy and requests.
  - The module only reads. It reports C(changed=false) and supports check mode; in check mode
    it still queries Prometheus but does not write the HTML report.
  - With O(mode=sequential) it instead B(watches) one canary step from O(start); at every scrape
    it reads the counts since then (errors, and requests per latency bucket, per route) and
    stops at the first boundary an anytime-valid sequential test crosses - V(fail) (worse beyond
    tolerance), V(pass) (bounded within tolerance) - or at O(max_duration) with V(inconclusive).
    Its error rates hold however often it looks. A canary restart or a canary target down fails
    the step at once. Missing or NaN data is never a pass.
  - With O(mode=plan), before any change, it reads the scrape interval and the live colour's
    traffic and returns the canary steps the sequential judge can decide within O(max_duration)
    each (raising the first step when traffic is thin), or fails with "insufficient traffic".
  - See C(docs/canary.md) in the collection for the method, the defaults and the benchmark.
requirements:
  - numpy
  - scipy
  - requests
options:
  prometheus_url:
    description: Base URL of the Prometheus HTTP API, for example V(http://127.0.0.1:9090).
    type: str
    required: true
  prometheus_token:
    description: Bearer token sent in the C(Authorization) header.
    type: str
  prometheus_username:
    description: User name for HTTP basic auth.
    type: str
  prometheus_password:
    description: Password for HTTP basic auth.
    type: str
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: A CA bundle to verify the server's certificate with.
    type: path
  client_cert:
    description: A client certificate (PEM) for mutual TLS.
    type: path
  client_key:
    description: The key of O(client_cert), when not in the same file.
    type: path
  timeout:
    description: Seconds to wait for each Prometheus answer.
    type: float
    default: 30
  baseline_selector:
    description:
      - Label matchers that select the baseline (the live colour), substituted for C($selector)
        in every query template.
      - Either a string without braces, such as V(colour="blue"), or a dict of label to exact
        value (see the examples).
    type: raw
    required: true
  canary_selector:
    description: Label matchers that select the canary, in the same form as O(baseline_selector).
    type: raw
    required: true
  lb_baseline_selector:
    description:
      - O(mode=sequential) and O(mode=plan) - label matchers that select the load balancer's series
        of the baseline's servers, such as V(job="haproxy",proxy="app",server=~".+_blue"). With
        O(lb_canary_selector), the judge also watches V(lb_error_ratio) - HAProxy's connection and
        response errors for those servers (failures it answers 502/503/504 itself, which the app
        never counts) over the requests it sent them - with a tolerance of +2 points.
      - The plan fails before any change when Prometheus has no such series for either colour.
    type: raw
  lb_canary_selector:
    description: The load balancer's series of the canary's servers, in the same form as O(lb_baseline_selector).
    type: raw
  mode:
    description:
      - V(window) judges one fixed window with the tests described above (give O(start) or O(lookback)).
      - V(sequential) watches one step from O(start) until a decision or O(max_duration); it
        judges the reference app's metrics (errors +2 points, p95 +20 %, p99 +50 %, per route).
      - V(plan) returns the steps to run, from O(steps) and the live colour's last O(lookback).
    type: str
    choices: [window, sequential, plan]
    default: window
  start:
    description:
      - Start of the analysis window - unix seconds, V(now-10m), or an RFC 3339 timestamp.
      - Give either O(start) or O(lookback) with O(mode=window). Required with O(mode=sequential) - when
        the step's weights were set.
    type: raw
  end:
    description: End of the analysis window, in the same forms as O(start). Defaults to now.
    type: raw
  lookback:
    description:
      - The analysis window as a duration ending at O(end), such as V(5m).
      - With O(mode=plan), how much of the live colour's recent traffic the plan reads (default V(5m)).
    type: str
  step:
    description: Resolution of the per-step series, a Prometheus duration.
    type: str
    default: 10s
  rate_window:
    description:
      - The range substituted for C($window) in per-step queries. Defaults to O(step), so steps
        do not overlap. Make it at least two scrape intervals.
      - A value above O(step) makes per-step samples overlap, and so correlated; the rank test
        then overstates its confidence.
    type: str
  warmup:
    description:
      - A period cut from the start of the window, while the canary warms up.
      - Defaults to V(0s) with O(mode=window), and to one O(look_interval) with O(mode=sequential)
        (the first look then comes two scrapes after the step began).
    type: str
  max_duration:
    description:
      - O(mode=sequential) - the longest the step is watched, in seconds. Without a decision by then
        the verdict is V(inconclusive) (the caller rolls back; a canary is never promoted without a pass).
      - O(mode=plan) - the cap each planned step must decide within.
    type: float
    default: 600
  look_interval:
    description:
      - O(mode=sequential) and O(mode=plan) - seconds between looks, a Prometheus duration.
      - Defaults to the scrape interval of the job the canary selector names, read from
        Prometheus' running configuration; required when the selector names no job. It may not be
        shorter than that scrape interval.
    type: str
  judged_steps:
    description:
      - O(mode=sequential) - how many judged steps the rollout has (its canary steps and the check
        after the switch); O(alpha) is split over them.
    type: int
    default: 4
  after_switch:
    description:
      - O(mode=sequential) - the check after the switch - the new colour at all of the traffic
        against the old colour's counts between O(baseline_start) and O(baseline_end). Only a
        V(fail) ends it early; reaching O(max_duration) is a V(pass).
    type: bool
    default: false
  baseline_start:
    description: With O(after_switch), the start of the old colour's window (the last canary step).
    type: raw
  baseline_end:
    description: With O(after_switch), its end (the switch).
    type: raw
  steps:
    description: O(mode=plan) - the requested canary steps, ascending percentages ending at 100.
    type: list
    elements: int
    default: [5, 25, 50, 100]
  max_first_step:
    description: O(mode=plan) - the largest first step the plan may raise to when traffic is thin.
    type: int
    default: 50
  budget:
    description:
      - O(mode=plan) - seconds the canary steps may take together. While the kept steps' estimates
        (with a 1.5x margin) add up to more, the smallest step is dropped, the first step staying at
        most O(max_first_step).
    type: float
    default: 600
  route_min_share:
    description:
      - O(mode=sequential) and O(mode=plan) - routes carrying less than this share of the baseline's
        requests are judged together as one route, V(other); every other route is judged on its own.
    type: float
    default: 0.1
  metrics:
    description:
      - The metrics to compare. Defaults to the reference app's set, described in
        C(docs/canary.md) - C(error_ratio), C(latency_p95), C(latency_p50) and C(latency_tail).
    type: list
    elements: dict
    suboptions:
      name:
        description: The metric's name, unique in the list.
        type: str
        required: true
      kind:
        description:
          - V(continuous) - one value per step from O(metrics[].query).
          - V(ratio) - events out of a total, judged from the counts of O(metrics[].numerator) and
            O(metrics[].denominator) (use C(increase(...[$window]))).
          - V(histogram) - bucket counts by C(le) from O(metrics[].query) (use
            C(sum by (le) (increase(..._bucket{$selector}[$window])))), judged on the tail.
        type: str
        choices: [continuous, ratio, histogram]
        default: continuous
      query:
        description: PromQL template for V(continuous) and V(histogram) metrics; must contain C($selector).
        type: str
      numerator:
        description: PromQL template counting the events of a V(ratio) metric. An empty answer counts as zero.
        type: str
      denominator:
        description: PromQL template counting the total of a V(ratio) metric.
        type: str
      direction:
        description: Which change is bad.
        type: str
        choices: [increase, decrease, either]
        default: increase
      critical:
        description: A failure of this metric fails the whole verdict, whatever the score.
        type: bool
        default: false
      weight:
        description: Weight of this metric in the score.
        type: float
        default: 1
      group:
        description: A group name for the report's group scores. Defaults to the metric's name.
        type: str
      tolerance_abs:
        description:
          - The largest acceptable worsening, in the metric's unit (for example V(0.02) for two points
            of error ratio). The effective tolerance is the larger of this and O(metrics[].tolerance_rel)
            times the baseline's level.
        type: float
        default: 0
      tolerance_rel:
        description: The largest acceptable worsening as a fraction of the baseline's level (V(0.2) is 20 %).
        type: float
        default: 0
      min_samples:
        description:
          - Fewer samples than this in either colour make the metric inconclusive. Samples are
            steps for V(continuous), counted events (requests) for V(ratio) and V(histogram).
          - Defaults to 10 steps, or 50 requests.
        type: int
      nodata:
        description:
          - What a metric without data counts as. V(ignore) drops it from the score (not allowed
            for a critical metric). Missing data never count as a pass.
        type: str
        choices: [inconclusive, fail, ignore]
        default: inconclusive
      tail_quantile:
        description:
          - The quantile of the tail check. For V(continuous) metrics (default V(0.9)) the canary's
            per-step values above the baseline's quantile are counted; V(0) switches the check off.
            For V(histogram) metrics (default V(0.99)) the requests slower than the bucket bound at
            the baseline's quantile are counted.
        type: float
      tail_tolerance_abs:
        description: Absolute tolerance of a V(continuous) metric's tail check. Defaults to O(metrics[].tolerance_abs).
        type: float
      tail_tolerance_rel:
        description: Relative tolerance of a V(continuous) metric's tail check. Defaults to O(metrics[].tolerance_rel).
        type: float
      unit:
        description: Unit for the reasons and the report - V(s) (shown in ms), V(ratio) (shown in %), or any label.
        type: str
      description:
        description: A sentence for the report.
        type: str
  alpha:
    description:
      - False-fail budget of the whole evaluation, split evenly over the metrics and their tests.
    type: float
    default: 0.01
  confidence:
    description:
      - One-sided confidence of the bound that must lie within tolerance for a metric to pass.
      - A canary exactly at the tolerance passes one evaluation with probability 1 - O(confidence);
        the default leaves room for a few repeated looks at a growing window.
    type: float
    default: 0.975
  fail_fraction:
    description:
      - A significant worsening fails once its estimate exceeds this fraction of the tolerance.
        Below it, a difference is negligible and never fails; between it and the tolerance the
        judge may answer either way (an indifference zone).
    type: float
    default: 0.5
  pass_score:
    description: Lowest score for V(pass).
    type: float
    default: 95
  marginal_score:
    description: Lowest score for V(marginal); below it the verdict is V(fail).
    type: float
    default: 75
  report_path:
    description:
      - Write a self-contained HTML report here (charts of both colours per metric, and the
        reasons). Not written in check mode.
    type: path
  report_title:
    description: Title of the HTML report.
    type: str
    default: Canary analysis
notes:
  - Give O(step) at least two scrape intervals, and evaluate the same window for both colours. When
    the canary selector names a job, the module reads its scrape interval from Prometheus and
    refuses a shorter step.
  - Check the verdict in the playbook (see the examples); the module itself only fails on errors.
seealso:
  - module: free4allweb.devops.traffic
attributes:
  check_mode:
    details: In check mode Prometheus is still queried, but no report is written.
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Judge green (the canary) against blue over the last canary step
  free4allweb.devops.canary_evaluate:
    prometheus_url: http://127.0.0.1:9090
    baseline_selector: {colour: blue}
    canary_selector: {colour: green}
    start: "{{ canary_step_started }}"
    warmup: 20s
    step: 10s
    report_path: /var/tmp/canary-step-5.html
  delegate_to: localhost
  register: canary

- name: Roll back unless the canary passed
  ansible.builtin.fail:
    msg: "canary {{ canary.verdict }}: {{ canary.reason }}"
  when: canary.verdict != 'pass'

- name: Plan the canary steps from the live colour's traffic, before any change
  free4allweb.devops.canary_evaluate:
    mode: plan
    prometheus_url: http://127.0.0.1:9090
    baseline_selector: {job: free4allweb-app, colour: blue}
    canary_selector: {job: free4allweb-app, colour: green}
    steps: [5, 25, 50, 100]
  delegate_to: localhost
  register: canary_plan

- name: Watch the 25 % step until the judge decides (at most 10 minutes)
  free4allweb.devops.canary_evaluate:
    mode: sequential
    prometheus_url: http://127.0.0.1:9090
    baseline_selector: {job: free4allweb-app, colour: blue}
    canary_selector: {job: free4allweb-app, colour: green}
    start: "{{ canary_step_started }}"
    judged_steps: "{{ canary_plan.steps | length }}"
    # also the failures HAProxy saw on each colour's servers (servers named <host>_<colour>)
    lb_baseline_selector: 'job="haproxy",proxy="app",server=~".+_blue"'
    lb_canary_selector: 'job="haproxy",proxy="app",server=~".+_green"'
  delegate_to: localhost
  register: canary

- name: Judge with explicit metrics, behind a TLS proxy with a token
  free4allweb.devops.canary_evaluate:
    prometheus_url: https://prometheus.example.net
    prometheus_token: "{{ vault_prometheus_token }}"
    ca_path: /etc/ssl/certs/internal-ca.pem
    baseline_selector: 'job="api",colour="blue"'
    canary_selector: 'job="api",colour="green"'
    lookback: 10m
    step: 15s
    metrics:
      - name: error_ratio
        kind: ratio
        numerator: 'sum(increase(http_requests_total{$selector,code=~"5.."}[$window]))'
        denominator: 'sum(increase(http_requests_total{$selector}[$window]))'
        critical: true
        tolerance_abs: 0.02
        unit: ratio
      - name: latency_p95
        query: 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{$selector}[$window])))'
        critical: true
        tolerance_rel: 0.2
        tolerance_abs: 0.005
        unit: s
      - name: cpu
        query: 'sum(rate(process_cpu_seconds_total{$selector}[$window]))'
        tolerance_rel: 0.3
        weight: 0.5
  delegate_to: localhost
  register: canary
"""

RETURN = r"""
verdict:
  description: V(pass), V(marginal), V(fail) or V(inconclusive).
  returned: success
  type: str
  sample: pass
score:
  description: Weighted share of metrics that passed, 0 to 100 (undecided metrics count 0).
  returned: success
  type: float
  sample: 100.0
score_range:
  description: The score if every undecided metric failed, and if every one passed.
  returned: success
  type: list
  elements: float
  sample: [75.0, 100.0]
reason:
  description: Why the verdict is what it is, in one sentence.
  returned: success
  type: str
  sample: "critical metric failed: error_ratio"
groups:
  description: Score of each metric group.
  returned: success
  type: dict
  sample: {"error_ratio": 100.0, "latency_p95": 100.0}
metrics:
  description: One entry per metric.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The metric's name.
      type: str
    kind:
      description: continuous, ratio or histogram.
      type: str
    classification:
      description: V(pass), V(fail), V(inconclusive), or V(ignored) (no data, strategy ignore).
      type: str
    reason:
      description: Why, with the numbers.
      type: str
    data:
      description: V(ok), V(thin) (below min_samples) or V(nodata).
      type: str
    n_baseline:
      description: Samples (steps) or events (requests) of the baseline.
      type: int
    n_canary:
      description: Samples or events of the canary.
      type: int
    baseline:
      description: Baseline level - median of the per-step values, or the proportion.
      type: float
    canary:
      description: Canary level, the same way.
      type: float
    effect:
      description: Canary minus baseline - the Hodges-Lehmann shift, or the difference of proportions.
      type: float
    effect_relative:
      description: The effect divided by the baseline's level.
      type: float
    lower:
      description: Lower confidence bound of the effect.
      type: float
    upper:
      description: Upper confidence bound of the effect.
      type: float
    tolerance:
      description: The effective tolerance, in the metric's unit.
      type: float
    p_value:
      description: p-value of the test for a worsening (Mann-Whitney U, or Fisher's exact test).
      type: float
    alpha:
      description: The significance level this metric's test was held to.
      type: float
    tail:
      description: The tail check - quantile, threshold, counts above it, quantiles of both colours.
      type: dict
  sample:
    - name: error_ratio
      kind: ratio
      classification: fail
      reason: "significant and beyond half the tolerance; 184/3000 canary vs 16/3000 baseline: +5.60 pts ..."
window:
  description: The window analysed (after the warm-up), in unix seconds, and the step.
  returned: success
  type: dict
  sample: {"start": 1767225600.0, "end": 1767225900.0, "step": 10.0, "rate_window": 10.0, "warmup": 20.0,
           "duration": 300.0, "steps": 30}
selectors:
  description: The label matchers used for each colour.
  returned: success
  type: dict
  sample: {"baseline": "colour=\"blue\"", "canary": "colour=\"green\""}
queries:
  description: Every PromQL query sent, with its metric and colour.
  returned: success
  type: list
  elements: dict
notes:
  description: Things worth knowing about the data (pooled series, differing buckets).
  returned: success
  type: list
  elements: str
prometheus_warnings:
  description: Warnings Prometheus sent with its answers.
  returned: success
  type: list
  elements: str
steps:
  description: O(mode=plan) - the steps to run.
  returned: mode plan
  type: list
  elements: int
  sample: [25, 50, 100]
estimates:
  description: O(mode=plan) - seconds the judge needs at each weight (null - it cannot decide).
  returned: mode plan
  type: dict
  sample: {"5": 632.0, "25": 212.4, "50": 201.3}
rate:
  description:
    - O(mode=plan) - requests per second the plan expects, the higher of the live colour's rate over
      O(lookback) and over its last three looks (a colour that went live within O(lookback) is not
      taken for a quiet one).
  returned: mode plan
  type: float
rate_window:
  description: O(mode=plan) - seconds of traffic RV(rate) was measured over.
  returned: mode plan
  type: float
judged_metrics:
  description:
    - O(mode=plan) - the metrics the sequential judge will watch; V(lb_error_ratio) is among them
      when the load balancer selectors are given.
  returned: mode plan
  type: list
  elements: str
  sample: [error_ratio, latency_p95, latency_p99, lb_error_ratio]
took:
  description: O(mode=sequential) - seconds from O(start) to the decision.
  returned: mode sequential
  type: float
decided_at:
  description: O(mode=sequential) - when the decision was reached (unix seconds).
  returned: mode sequential
  type: float
history:
  description:
    - O(mode=sequential) - every look - its time, decision, canary requests, and per metric and route the bounds.
  returned: mode sequential
  type: list
  elements: dict
look_interval:
  description: O(mode=sequential) and O(mode=plan) - seconds between looks.
  returned: mode sequential or plan
  type: float
report_path:
  description: Where the HTML report was written; absent when none was asked for or in check mode.
  returned: when a report was written
  type: str
"""

import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary import watch
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.analysis import (
        AnalysisError,
        analyse,
        resolve_window,
    )
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.judge import JudgeConfig
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (
        MetricConfigError,
        MetricSpec,
        free4allweb_metrics,
    )
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.report import (
        render_html,
        render_sequential_html,
    )
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.sequential import SequentialConfigError
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary.strategy import StrategyError

    IMPORT_ERROR = None
except ImportError:  # numpy or scipy missing on the host that runs the module
    IMPORT_ERROR = traceback.format_exc()

from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import (
    HAS_REQUESTS,
    PrometheusClient,
    PrometheusError,
)

METRIC_OPTIONS = {
    "name": {"type": "str", "required": True},
    "kind": {"type": "str", "choices": ["continuous", "ratio", "histogram"], "default": "continuous"},
    "query": {"type": "str"},
    "numerator": {"type": "str"},
    "denominator": {"type": "str"},
    "direction": {"type": "str", "choices": ["increase", "decrease", "either"], "default": "increase"},
    "critical": {"type": "bool", "default": False},
    "weight": {"type": "float", "default": 1.0},
    "group": {"type": "str"},
    "tolerance_abs": {"type": "float", "default": 0.0},
    "tolerance_rel": {"type": "float", "default": 0.0},
    "min_samples": {"type": "int"},
    "nodata": {"type": "str", "choices": ["inconclusive", "fail", "ignore"], "default": "inconclusive"},
    "tail_quantile": {"type": "float"},
    "tail_tolerance_abs": {"type": "float"},
    "tail_tolerance_rel": {"type": "float"},
    "unit": {"type": "str"},
    "description": {"type": "str"},
}


def argument_spec() -> dict:
    return {
        "prometheus_url": {"type": "str", "required": True},
        "prometheus_token": {"type": "str", "no_log": True},
        "prometheus_username": {"type": "str"},
        "prometheus_password": {"type": "str", "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "client_cert": {"type": "path"},
        "client_key": {"type": "path", "no_log": False},
        "timeout": {"type": "float", "default": 30.0},
        "baseline_selector": {"type": "raw", "required": True},
        "canary_selector": {"type": "raw", "required": True},
        "lb_baseline_selector": {"type": "raw"},
        "lb_canary_selector": {"type": "raw"},
        "start": {"type": "raw"},
        "end": {"type": "raw"},
        "lookback": {"type": "str"},
        "step": {"type": "str", "default": "10s"},
        "rate_window": {"type": "str"},
        "warmup": {"type": "str"},
        "mode": {"type": "str", "choices": ["window", "sequential", "plan"], "default": "window"},
        "max_duration": {"type": "float", "default": 600.0},
        "look_interval": {"type": "str"},
        "judged_steps": {"type": "int", "default": 4},
        "after_switch": {"type": "bool", "default": False},
        "baseline_start": {"type": "raw"},
        "baseline_end": {"type": "raw"},
        "steps": {"type": "list", "elements": "int", "default": [5, 25, 50, 100]},
        "max_first_step": {"type": "int", "default": 50},
        "budget": {"type": "float", "default": 600.0},
        "route_min_share": {"type": "float", "default": 0.1},
        "metrics": {"type": "list", "elements": "dict", "options": METRIC_OPTIONS},
        "alpha": {"type": "float", "default": 0.01},
        "confidence": {"type": "float", "default": 0.975},
        "fail_fraction": {"type": "float", "default": 0.5},
        "pass_score": {"type": "float", "default": 95.0, "no_log": False},
        "marginal_score": {"type": "float", "default": 75.0},
        "report_path": {"type": "path"},
        "report_title": {"type": "str", "default": "Canary analysis"},
    }


def _write_report(path: str, html: str) -> None:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".canary-report-", suffix=".html", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _client(p) -> PrometheusClient:
    return PrometheusClient(
        p["prometheus_url"],
        token=p["prometheus_token"],
        username=p["prometheus_username"],
        password=p["prometheus_password"],
        validate_certs=p["validate_certs"],
        ca_path=p["ca_path"],
        client_cert=p["client_cert"],
        client_key=p["client_key"],
        timeout=p["timeout"],
    )


def run_watch(module) -> None:
    """mode=plan and mode=sequential (module_utils/canary/watch.py); exits the module."""
    p = module.params
    if p["metrics"]:
        module.fail_json(msg="canary_evaluate: metrics applies to mode=window only", verdict="error")
    if not 0 < p["max_duration"] <= 86400:
        module.fail_json(msg=f"canary_evaluate: max_duration must lie in (0, 86400] s, not {p['max_duration']}")
    if not 0 < p["budget"] <= 86400:
        module.fail_json(msg=f"canary_evaluate: budget must lie in (0, 86400] s, not {p['budget']}")
    client = None
    try:
        client = _client(p)
        common = {
            "baseline_selector": p["baseline_selector"],
            "canary_selector": p["canary_selector"],
            "cap": p["max_duration"],
            "given_look_interval": p["look_interval"],
            "alpha": p["alpha"],
            "fail_fraction": p["fail_fraction"],
            "route_min_share": p["route_min_share"],
            "lb_selectors": (
                {"baseline": p["lb_baseline_selector"], "canary": p["lb_canary_selector"]}
                if p["lb_canary_selector"]
                else None
            ),
        }
        if p["mode"] == "plan":
            result = watch.plan(
                client,
                steps=p["steps"],
                lookback=p["lookback"] or "5m",
                max_first_step=p["max_first_step"],
                budget=p["budget"],
                **common,
            )
            module.exit_json(changed=False, **result)
        result = watch.sequential(
            client,
            start=p["start"],
            warmup=p["warmup"],
            judged_steps=p["judged_steps"],
            after_switch=p["after_switch"],
            baseline_start=p["baseline_start"],
            baseline_end=p["baseline_end"],
            **common,
        )
    except StrategyError as e:
        module.fail_json(msg=f"canary_evaluate: {e}", verdict="error", insufficient_traffic=True)
    except PrometheusError as e:
        module.fail_json(msg=f"canary analysis failed, no verdict: {e}", verdict="error")
    except (SequentialConfigError, ValueError) as e:
        module.fail_json(msg=f"canary_evaluate: {e}", verdict="error")
    finally:
        if client is not None:
            client.close()
    if p["report_path"] and not module.check_mode:
        try:
            _write_report(p["report_path"], render_sequential_html(result, title=p["report_title"]))
        except OSError as e:
            result["verdict"] = "error"
            module.fail_json(msg=f"could not write the report to {p['report_path']}: {e}", **result)
        result["report_path"] = p["report_path"]
    module.exit_json(changed=False, **result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("start", "lookback"), ("prometheus_token", "prometheus_username")],
        required_if=[
            ("mode", "window", ("start", "lookback"), True),
            ("mode", "sequential", ("start",)),
            ("after_switch", True, ("baseline_start", "baseline_end")),
        ],
        required_together=[
            ("prometheus_username", "prometheus_password"),
            ("lb_baseline_selector", "lb_canary_selector"),
        ],
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("numpy and scipy"), exception=IMPORT_ERROR, verdict="error")
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), verdict="error")
    p = module.params
    if p["mode"] != "window":
        run_watch(module)
    if p["lb_canary_selector"]:
        module.fail_json(
            msg="canary_evaluate: the load balancer selectors apply to mode=sequential and plan", verdict="error"
        )

    try:
        raw_metrics = p["metrics"] if p["metrics"] else free4allweb_metrics()
        specs = [MetricSpec.from_dict(m) for m in raw_metrics]
        config = JudgeConfig(
            alpha=p["alpha"],
            confidence=p["confidence"],
            pass_score=p["pass_score"],
            marginal_score=p["marginal_score"],
            fail_fraction=p["fail_fraction"],
        )
        window = resolve_window(
            start=p["start"],
            end=p["end"],
            lookback=p["lookback"],
            step=p["step"],
            warmup=p["warmup"] or "0s",
            rate_window=p["rate_window"],
        )
    except (MetricConfigError, AnalysisError, ValueError) as e:
        module.fail_json(msg=f"canary_evaluate: {e}", verdict="error")

    client = None
    try:
        client = _client(p)
        step_notes = watch.check_window_step(client, p["canary_selector"], window.step)
        analysis = analyse(client, specs, p["baseline_selector"], p["canary_selector"], window, config=config)
        analysis.notes.extend(step_notes)
    except PrometheusError as e:
        module.fail_json(msg=f"canary analysis failed, no verdict: {e}", verdict="error")
    except (AnalysisError, MetricConfigError, ValueError) as e:
        module.fail_json(msg=f"canary_evaluate: {e}", verdict="error")
    finally:
        if client is not None:
            client.close()

    result = analysis.as_dict()
    if p["report_path"] and not module.check_mode:
        try:
            _write_report(p["report_path"], render_html(analysis, title=p["report_title"], config=config))
        except OSError as e:
            # the analysis stands, but a task that promised a report must not pass without it
            result["verdict"] = "error"
            module.fail_json(msg=f"could not write the report to {p['report_path']}: {e}", **result)
        result["report_path"] = p["report_path"]
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
