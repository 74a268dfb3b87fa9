"""The statistics under the canary judge: rank tests, shift estimates and proportion intervals.

Plain Python on numpy and scipy; no Ansible imports, so unit tests reach it directly.

* Mann-Whitney U comes from scipy (`scipy.stats.mannwhitneyu`).
* The Hodges-Lehmann shift estimate is the median of all pairwise differences canary - baseline.
  Its confidence interval is the classical distribution-free one (Lehmann 1963; Hollander & Wolfe,
  *Nonparametric Statistical Methods*, 4.3): trim C differences from each end of the sorted
  pairwise differences, C taken from the null distribution of U. The null distribution is exact
  for small samples without ties, and the tie-corrected normal approximation otherwise.
* Proportions: Wilson score intervals, Newcombe's hybrid score interval for a difference of two
  proportions (Newcombe 1998, method 10), and Fisher's exact test from scipy for the p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as _st
from scipy.special import ndtri

# Exact null distribution of U when both samples are at most this large and nothing is tied.
EXACT_MAX = 50


def z_for(alpha_one_sided: float) -> float:
    """The standard normal quantile z with P(Z > z) = alpha."""
    return float(ndtri(1.0 - alpha_one_sided))


# --------------------------------------------------------------------------- Mann-Whitney / HL


@lru_cache(maxsize=512)
def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0 .. m*n under the null hypothesis, samples of sizes m and n, no ties.

    The counts of arrangements are the coefficients of the Gaussian binomial coefficient
    [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), built by multiplying and dividing
    polynomials in q.
    """
    if m > n:
        m, n = n, m
    size = m * n + 1
    poly = np.zeros(size)
    poly[0] = 1.0
    for i in range(1, m + 1):
        # multiply by (1 - q^(n+i)), truncated to degree m*n (higher terms cancel at the end)
        k = n + i
        if k < size:
            poly[k:] -= poly[: size - k].copy()
        # divide by (1 - q^i): b[j] = a[j] + b[j - i]
        for start in range(i, size, i):
            stop = min(start + i, size)
            poly[start:stop] += poly[start - i : stop - i]
    total = math.comb(m + n, m)
    cdf = np.cumsum(poly) / total
    cdf[-1] = 1.0
    return cdf


def tie_sizes(values: np.ndarray) -> np.ndarray:
    """Sizes of the groups of equal values (only groups larger than one)."""
    counts = np.unique(values, return_counts=True)[1]
    return counts[counts > 1]


def critical_count(m: int, n: int, alpha_one_sided: float, ties: np.ndarray | None = None) -> tuple[int, bool]:
    """C, the number of pairwise differences to trim from each end for a confidence bound.

    The bound [D(C), D(mn+1-C)] (1-based order statistics of the mn differences) misses the
    true shift on each side with probability at most alpha_one_sided. C = 0 means the data cannot
    bound the shift at that level (the interval is infinite). Returns (C, exact).
    """
    if m == 0 or n == 0:
        return 0, True
    has_ties = ties is not None and len(ties) > 0
    if m <= EXACT_MAX and n <= EXACT_MAX and not has_ties:
        cdf = u_null_cdf(m, n)
        # C = max c with P(U <= c - 1) <= alpha
        return int(np.searchsorted(cdf, alpha_one_sided * (1 + 1e-9), side="right")), True
    mn = m * n
    big_n = m + n
    tie_term = float(np.sum(ties.astype(float) ** 3 - ties)) if has_ties else 0.0
    var = mn / 12.0 * ((big_n + 1) - tie_term / (big_n * (big_n - 1)))
    if var <= 0:
        return 0, False
    c = math.floor(mn / 2.0 + 0.5 - z_for(alpha_one_sided) * math.sqrt(var))
    return max(0, min(c, mn // 2)), False


@dataclass(frozen=True)
class ShiftEstimate:
    """Hodges-Lehmann estimate of how far the canary sits above the baseline, with bounds."""

    estimate: float
    lower: float  # lower confidence bound (-inf when the data cannot bound it)
    upper: float  # upper confidence bound (+inf when the data cannot bound it)
    alpha: float  # each bound is wrong with probability at most alpha
    exact: bool  # bounds from the exact null distribution (else normal approximation)


def hodges_lehmann(canary: np.ndarray, baseline: np.ndarray, alpha_one_sided: float = 0.05) -> ShiftEstimate:
    """The HL shift (median of canary_i - baseline_j) and its one-sided confidence bounds."""
    y = np.asarray(canary, dtype=float)
    x = np.asarray(baseline, dtype=float)
    m, n = len(y), len(x)
    if m == 0 or n == 0:
        return ShiftEstimate(math.nan, -math.inf, math.inf, alpha_one_sided, True)
    diffs = np.subtract.outer(y, x).ravel()
    mn = diffs.size
    # Ties inside each sample survive every shift; ties across the samples happen only at a few
    # shifts. So the bounds, found by shifting, use the within-sample ties.
    c, exact = critical_count(m, n, alpha_one_sided, np.concatenate([tie_sizes(y), tie_sizes(x)]))
    if c >= 1:
        lo_i, hi_i = c - 1, mn - c
        part = np.partition(diffs, [lo_i, hi_i, (mn - 1) // 2, mn // 2])
        lower, upper = float(part[lo_i]), float(part[hi_i])
        estimate = float((part[(mn - 1) // 2] + part[mn // 2]) / 2.0)
    else:
        lower, upper = -math.inf, math.inf
        estimate = float(np.median(diffs))
    return ShiftEstimate(estimate, lower, upper, alpha_one_sided, exact)


@dataclass(frozen=True)
class RankTest:
    u: float  # U statistic of the canary (pairs canary > baseline, ties count one half)
    p_value: float
    superiority: float  # U / (m n): probability a canary value exceeds a baseline value


def mann_whitney(canary: np.ndarray, baseline: np.ndarray, alternative: str = "greater") -> RankTest:
    """scipy's Mann-Whitney U test of canary against baseline; constant data give p = 1."""
    y = np.asarray(canary, dtype=float)
    x = np.asarray(baseline, dtype=float)
    m, n = len(y), len(x)
    if m == 0 or n == 0:
        return RankTest(math.nan, 1.0, math.nan)
    both = np.concatenate([y, x])
    if np.all(both == both[0]):
        return RankTest(m * n / 2.0, 1.0, 0.5)
    res = _st.mannwhitneyu(y, x, alternative=alternative, method="auto")
    p = float(res.pvalue)
    if not math.isfinite(p):
        p = 1.0
    return RankTest(float(res.statistic), min(1.0, p), float(res.statistic) / (m * n))


# --------------------------------------------------------------------------- quantiles


def quantile(values: np.ndarray, q: float) -> float:
    """Sample quantile (linear interpolation, numpy's default); NaN for an empty sample."""
    v = np.asarray(values, dtype=float)
    return float(np.quantile(v, q)) if v.size else math.nan


# --------------------------------------------------------------------------- proportions


def wilson_interval(k, n, z: float):
    """Wilson score interval for k successes in n trials (numpy arrays or scalars)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return centre - half, centre + half


@dataclass(frozen=True)
class ProportionDifference:
    """Canary proportion minus baseline proportion, with Newcombe's one-sided bounds."""

    p_canary: float
    p_baseline: float
    difference: float
    lower: float
    upper: float
    alpha: float


def newcombe_difference(
    k_canary: int, n_canary: int, k_baseline: int, n_baseline: int, alpha_one_sided: float = 0.05
) -> ProportionDifference:
    """Newcombe's hybrid score bounds for p_canary - p_baseline (method 10, from Wilson intervals).

    Good coverage at small counts and at zero events, where the Wald interval collapses.
    """
    if n_canary <= 0 or n_baseline <= 0:
        return ProportionDifference(math.nan, math.nan, math.nan, -1.0, 1.0, alpha_one_sided)
    z = z_for(alpha_one_sided)
    p1, p2 = k_canary / n_canary, k_baseline / n_baseline
    l1, u1 = wilson_interval(k_canary, n_canary, z)
    l2, u2 = wilson_interval(k_baseline, n_baseline, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - float(l1)) ** 2 + (float(u2) - p2) ** 2)
    upper = d + math.sqrt((float(u1) - p1) ** 2 + (p2 - float(l2)) ** 2)
    return ProportionDifference(p1, p2, d, max(-1.0, lower), min(1.0, upper), alpha_one_sided)


def fisher_greater(
    k_canary: int, n_canary: int, k_baseline: int, n_baseline: int, alternative: str = "greater"
) -> float:
    """scipy's Fisher exact test: is the canary's proportion greater than the baseline's?"""
    if n_canary <= 0 or n_baseline <= 0:
        return 1.0
    table = [[k_canary, n_canary - k_canary], [k_baseline, n_baseline - k_baseline]]
    return float(_st.fisher_exact(table, alternative=alternative).pvalue)


# --------------------------------------------------------------------------- histograms


def histogram_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> float:
    """Prometheus' histogram_quantile on non-cumulative bucket counts (upper bounds, last +Inf).

    Linear interpolation inside the bucket, the first bucket starting at 0; a quantile in the
    +Inf bucket returns the largest finite upper bound, as Prometheus does. NaN when empty.
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0 or not math.isfinite(total):
        return math.nan
    cum = np.cumsum(counts)
    rank = q * total
    i = int(np.searchsorted(cum, rank, side="left"))
    i = min(i, len(bounds) - 1)
    if math.isinf(bounds[i]):
        return float(bounds[-2]) if len(bounds) > 1 else math.nan
    lower_bound = 0.0 if i == 0 else float(bounds[i - 1])
    below = 0.0 if i == 0 else float(cum[i - 1])
    in_bucket = float(counts[i])
    if in_bucket <= 0:
        return float(bounds[i])
    return lower_bound + (float(bounds[i]) - lower_bound) * (rank - below) / in_bucket
