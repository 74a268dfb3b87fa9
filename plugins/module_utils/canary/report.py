"""The HTML report of a canary analysis: one self-contained page, charts as inline SVG, no script.

Per metric: where the effect and its confidence bounds fall against the tolerance, both colours'
time series over the window, and their distributions (ECDF of per-step values, proportions with
intervals, or latency buckets with the tail threshold), with the judge's reason.

Plain Python; no Ansible imports.
"""

from __future__ import annotations

import datetime as _dt
import math
from html import escape
from itertools import pairwise

import numpy as np

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (
    ContinuousData,
    CountData,
    HistogramData,
)

BASE_C = "#56657a"  # baseline: slate
CANARY_C = "#e8590c"  # canary: orange
VERDICT_C = {
    "pass": "#2b8a3e",
    "marginal": "#a86b00",
    "fail": "#c92a2a",
    "inconclusive": "#5c5f66",
    "ignored": "#868e96",
    "error": "#c92a2a",
}
W, H = 460, 220
PAD_L, PAD_R, PAD_T, PAD_B = 58, 14, 14, 34

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;background:#f4f5f7;color:#1f2328}
header{padding:22px 32px;color:#fff}
header h1{margin:0 0 4px;font-size:15px;font-weight:600;opacity:.9;letter-spacing:.02em}
header .verdict{font-size:34px;font-weight:700;text-transform:uppercase;letter-spacing:.04em}
header .score{font-size:18px;margin-left:14px;opacity:.95}
header .reason{font-size:16px;margin-top:6px}
header .meta{margin-top:10px;font-size:12.5px;opacity:.9}
main{padding:18px 32px 40px;max-width:1400px}
table.summary{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden;
 box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:22px}
table.summary th,table.summary td{padding:8px 10px;text-align:left;border-bottom:1px solid #eceef1;font-size:13px}
table.summary th{background:#fafbfc;font-weight:600;color:#57606a}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;
 text-transform:uppercase;letter-spacing:.03em}
.crit{display:inline-block;margin-left:6px;font-size:11px;color:#c92a2a;border:1px solid #c92a2a;
 border-radius:4px;padding:0 4px}
section.metric{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:18px;
 padding:14px 18px;border-left:6px solid #ccc}
section.metric h2{font-size:17px;margin:0 0 2px}
section.metric .desc{color:#57606a;font-size:12.5px}
section.metric .why{margin:8px 0 10px;font-size:14px}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart{flex:1 1 420px;min-width:380px}
.chart h3{font-size:12px;font-weight:600;color:#57606a;margin:0 0 2px;text-transform:uppercase;letter-spacing:.04em}
svg text{font-family:inherit}
.legend{font-size:12px;color:#57606a;margin:4px 0 10px}
.legend span{display:inline-block;width:12px;height:3px;margin:0 5px 3px 12px;vertical-align:middle}
footer{color:#6e7781;font-size:12px;padding:0 32px 30px}
ul.notes{font-size:12.5px;color:#57606a}
"""


# --------------------------------------------------------------------------- formatting


def fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None or math.isnan(value) else ("+inf" if value > 0 else "-inf")
    if unit == "s":
        v = value * 1000
        return f"{v:.0f} ms" if abs(v) >= 100 else f"{v:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if abs(value) >= 1000 or (value != 0 and abs(value) < 0.01):
        return f"{value:.3g}{(' ' + unit) if unit else ''}"
    return f"{value:.3f}".rstrip("0").rstrip(".") + ((" " + unit) if unit else "")


def fmt_diff(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if unit == "ratio":
        return f"{value * 100:+.2f} pts"
    sign = "+" if value >= 0 else "-"
    return sign + fmt(abs(value), unit)


def utc(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


# --------------------------------------------------------------------------- svg primitives


class Plot:
    """A chart area with linear axes mapping data to SVG pixels."""

    def __init__(self, x0, x1, y0, y1, *, width=W, height=H):
        if not x1 > x0:
            x1 = x0 + 1
        if not y1 > y0:
            y1 = y0 + (abs(y0) * 0.1 or 1)
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.w, self.h = width, height
        self.parts: list[str] = []

    def X(self, x):
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (self.w - PAD_L - PAD_R)

    def Y(self, y):
        return self.h - PAD_B - (y - self.y0) / (self.y1 - self.y0) * (self.h - PAD_T - PAD_B)

    def axes(self, xfmt, yfmt, xlabel="", xticks=None):
        p = self.parts
        for t in _nice_ticks(self.y0, self.y1, 4):
            y = self.Y(t)
            p.append(f'<line x1="{PAD_L}" x2="{self.w - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eceef1"/>')
            p.append(
                f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#6e7781">'
                f"{escape(yfmt(t))}</text>"
            )
        for t in xticks if xticks is not None else _nice_ticks(self.x0, self.x1, 5):
            if not self.x0 <= t <= self.x1:
                continue
            x = self.X(t)
            p.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.h - PAD_B}" y2="{self.h - PAD_B + 4}" stroke="#8c959f"/>'
            )
            p.append(
                f'<text x="{x:.1f}" y="{self.h - PAD_B + 16}" font-size="11" text-anchor="middle" fill="#6e7781">'
                f"{escape(xfmt(t))}</text>"
            )
        p.append(
            f'<line x1="{PAD_L}" x2="{self.w - PAD_R}" y1="{self.h - PAD_B}" y2="{self.h - PAD_B}" stroke="#8c959f"/>'
        )
        if xlabel:
            p.append(
                f'<text x="{(PAD_L + self.w - PAD_R) / 2:.1f}" y="{self.h - 3}" font-size="11" text-anchor="middle" '
                f'fill="#6e7781">{escape(xlabel)}</text>'
            )

    def line(self, xs, ys, colour, *, width=2.0, dash="", step=False):
        segs, cur = [], []
        for x, y in zip(xs, ys, strict=True):
            if y is None or not math.isfinite(y):
                if cur:
                    segs.append(cur)
                cur = []
                continue
            cur.append((self.X(x), self.Y(min(max(y, self.y0), self.y1))))
        if cur:
            segs.append(cur)
        for seg in segs:
            pts = seg
            if step:
                pts = [seg[0]]
                for a, b in pairwise(seg):
                    pts += [(b[0], a[1]), b]
            d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round"{extra}/>'
            )
            if len(seg) == 1:
                x, y = seg[0]
                self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')

    def hline(self, y, colour, label="", dash="4 3"):
        if not (math.isfinite(y) and self.y0 <= y <= self.y1):
            return
        yy = self.Y(y)
        self.parts.append(
            f'<line x1="{PAD_L}" x2="{self.w - PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{colour}" '
            f'stroke-dasharray="{dash}" stroke-width="1.2"/>'
        )
        if label:
            self.parts.append(
                f'<text x="{self.w - PAD_R - 2}" y="{yy - 4:.1f}" font-size="10.5" text-anchor="end" '
                f'fill="{colour}">{escape(label)}</text>'
            )

    def vline(self, x, colour, label="", dash="4 3"):
        if not (math.isfinite(x) and self.x0 <= x <= self.x1):
            return
        xx = self.X(x)
        self.parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{PAD_T}" y2="{self.h - PAD_B}" stroke="{colour}" '
            f'stroke-dasharray="{dash}" stroke-width="1.2"/>'
        )
        if label:
            right = xx > self.w - PAD_R - 7 * len(label)
            anchor, dx = ("end", -3) if right else ("start", 3)
            self.parts.append(
                f'<text x="{xx + dx:.1f}" y="{PAD_T + 10}" font-size="10.5" text-anchor="{anchor}" fill="{colour}">'
                f"{escape(label)}</text>"
            )

    def svg(self, title: str) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.w} {self.h}" width="100%" '
            f'role="img" aria-label="{escape(title)}">' + "".join(self.parts) + "</svg>"
        )


def _empty(message: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%">'
        f'<rect x="1" y="1" width="{W - 2}" height="{H - 2}" fill="#fafbfc" stroke="#d0d7de" stroke-dasharray="4 3"/>'
        f'<text x="{W / 2}" y="{H / 2}" font-size="13" text-anchor="middle" fill="#6e7781">{escape(message)}</text>'
        "</svg>"
    )


def _finite(a) -> np.ndarray:
    a = np.asarray(a if a is not None else [], dtype=float)
    return a[np.isfinite(a)]


# --------------------------------------------------------------------------- charts


def effect_gauge(m: dict, unit: str, fail_fraction: float) -> str:
    """Where the effect and its bounds sit against the negligible zone and the tolerance."""
    tol = m.get("tolerance") or 0.0
    est, lo, hi = _num(m.get("effect")), _num(m.get("lower")), _num(m.get("upper"))
    direction = m.get("direction", "increase")
    finite = [v for v in (est, lo, hi) if math.isfinite(v)]
    reach = max([tol * 1.5, *(abs(v) for v in finite), 1e-12])
    left = -reach if direction in ("decrease", "either") else min([0.0, *finite]) - 0.15 * reach
    right = reach if direction in ("increase", "either") else max([0.0, *finite]) + 0.15 * reach
    left, right = min(left, -0.15 * reach), max(right, 0.15 * reach)
    pad = 0.06 * (right - left)
    left, right = left - pad, right + pad
    width, height = 1100, 58
    p = Plot(left, right, 0, 1, width=width, height=height)
    parts = p.parts

    def X(v):
        return p.X(min(max(v, left), right))

    y0, y1 = 14, 34
    zones = []
    if direction in ("increase", "either"):
        zones += [(fail_fraction * tol, tol, "#fff3bf"), (tol, right, "#ffe3e3")]
    if direction in ("decrease", "either"):
        zones += [(-tol, -fail_fraction * tol, "#fff3bf"), (left, -tol, "#ffe3e3")]
    parts.append(
        f'<rect x="{X(left):.1f}" y="{y0}" width="{X(right) - X(left):.1f}" height="{y1 - y0}" fill="#ebfbee"/>'
    )
    for a, b, colour in zones:
        if b > a:
            parts.append(
                f'<rect x="{X(a):.1f}" y="{y0}" width="{X(b) - X(a):.1f}" height="{y1 - y0}" fill="{colour}"/>'
            )
    parts.append(f'<line x1="{X(0):.1f}" x2="{X(0):.1f}" y1="{y0 - 3}" y2="{y1 + 3}" stroke="#8c959f"/>')
    parts.append(
        f'<text x="{X(0):.1f}" y="{height - 4}" font-size="11" text-anchor="middle" fill="#6e7781">no change</text>'
    )
    if tol > 0:
        ticks = {"increase": (tol,), "decrease": (-tol,), "either": (tol, -tol)}[direction]
        for t in ticks:
            parts.append(
                f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{y0 - 3}" y2="{y1 + 3}" stroke="#c92a2a" '
                'stroke-width="1.5"/>'
                f'<text x="{X(t):.1f}" y="{height - 4}" font-size="11" text-anchor="middle" fill="#c92a2a">'
                f"tolerance {escape(fmt_diff(t, unit))}</text>"
            )
    if math.isfinite(est):
        a = X(lo) if math.isfinite(lo) else X(left)
        b = X(hi) if math.isfinite(hi) else X(right)
        yc = (y0 + y1) / 2
        parts.append(f'<line x1="{a:.1f}" x2="{b:.1f}" y1="{yc}" y2="{yc}" stroke="{CANARY_C}" stroke-width="3"/>')
        for xx, bounded in ((a, math.isfinite(lo)), (b, math.isfinite(hi))):
            if bounded:
                parts.append(
                    f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{yc - 7}" y2="{yc + 7}" stroke="{CANARY_C}" '
                    'stroke-width="2"/>'
                )
        parts.append(
            f'<circle cx="{X(est):.1f}" cy="{yc}" r="5.5" fill="{CANARY_C}" stroke="#fff" stroke-width="1.5"/>'
        )
        label = f"effect {fmt_diff(est, unit)}, bounds {fmt_diff(lo, unit)} .. {fmt_diff(hi, unit)}"
        parts.append(
            f'<text x="{min(max(X(est), 160), width - 160):.1f}" y="{y0 - 4}" font-size="11" text-anchor="middle" '
            f'fill="#1f2328">{escape(label)}</text>'
        )
    else:
        parts.append(
            f'<text x="{width / 2}" y="{(y0 + y1) / 2 + 4}" font-size="12" text-anchor="middle" fill="#6e7781">'
            "no estimate</text>"
        )
    return p.svg("effect against tolerance")


def _time_axis(series_list):
    ts = [np.asarray(s.timestamps, float) for s in series_list if s is not None and len(s.timestamps)]
    if not ts:
        return None
    t0 = min(float(t.min()) for t in ts)
    t1 = max(float(t.max()) for t in ts)
    return t0, t1


def _time_ticks(t0: float, t1: float) -> list[float]:
    span = max(t1 - t0, 1.0)
    step = next((s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200) if span / s <= 6), 14400)
    first = t0 + step
    return [t0 + k * step for k in range(int(span // step) + 1)] if first > t0 else [t0]


def _tfmt(t0):
    def f(v):
        s = round(v - t0)
        return f"{s // 60}:{s % 60:02d}" if s >= 0 else ""

    return f


def timeseries_chart(base, canary, unit: str, ref_lines=()) -> str:
    axis = _time_axis([base, canary])
    if axis is None:
        return _empty("no time series returned")
    t0, t1 = axis
    vals = np.concatenate([_finite(s.values) for s in (base, canary) if s is not None] + [np.zeros(0)])
    refs = [v for v, _c, _l in ref_lines if v is not None and math.isfinite(v)]
    if vals.size == 0:
        return _empty("every step was empty (NaN)")
    lo = min(0.0, float(vals.min()))
    hi = max([float(np.quantile(vals, 0.995)) * 1.08, *[r * 1.05 for r in refs]])
    if float(vals.max()) > hi:
        hi = float(vals.max()) * 1.02 if float(vals.max()) < hi * 1.6 else hi
    p = Plot(t0, t1, lo, hi if hi > lo else lo + 1)
    p.axes(_tfmt(t0), lambda v: fmt(v, unit), "time into the window (min:s)", _time_ticks(t0, t1))
    for v, colour, label in ref_lines:
        if v is not None:
            p.hline(v, colour, label)
    for s, colour in ((base, BASE_C), (canary, CANARY_C)):
        if s is not None and len(s.timestamps):
            p.line(np.asarray(s.timestamps, float), np.asarray(s.values, float), colour)
    return p.svg("time series")


def ecdf_chart(x, y, unit: str, marks=()) -> str:
    x, y = _finite(x), _finite(y)
    if x.size == 0 and y.size == 0:
        return _empty("no samples")
    both = np.concatenate([x, y])
    lo, hi = float(both.min()), float(both.max())
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    p = Plot(lo - pad, hi + pad, 0, 1)
    p.axes(lambda v: fmt(v, unit), lambda v: f"{v * 100:.0f} %", "value (share of steps at or below)")
    for v, colour, label in marks:
        p.vline(v, colour, label)
    for arr, colour in ((x, BASE_C), (y, CANARY_C)):
        if arr.size:
            s = np.sort(arr)
            xs = np.concatenate([[lo - pad], s, [hi + pad]])
            ys = np.concatenate([[0.0], np.arange(1, s.size + 1) / s.size, [1.0]])
            p.line(xs, ys, colour, step=True)
    return p.svg("distribution")


def proportion_chart(m: dict, alpha_pass: float) -> str:
    d = m.get("details", {})
    kb, kc = d.get("events_baseline"), d.get("events_canary")
    if kb is None and m.get("tail"):
        kb, kc = m["tail"].get("baseline_above"), m["tail"].get("canary_above")
    nb, nc = m.get("n_baseline") or 0, m.get("n_canary") or 0
    if not nb or not nc or kb is None:
        return _empty("no counts")
    z = stats.z_for(alpha_pass)
    rows = []
    for label, k, n, colour in (("baseline", kb, nb, BASE_C), ("canary", kc, nc, CANARY_C)):
        lo, hi = stats.wilson_interval(k, n, z)
        rows.append((label, k / n, float(lo), float(hi), k, n, colour))
    tol = m.get("tolerance") or 0.0
    limit = rows[0][1] + tol
    top = max(*(r[3] for r in rows), limit) * 1.25 or 0.01
    p = Plot(0, top, 0, 2)
    p.axes(lambda v: f"{v * 100:.1f} %", lambda v: "", "share (with one-sided bounds)")
    p.parts = [s for s in p.parts if 'text-anchor="end"' not in s]  # no y labels
    for i, (label, ph, lo, hi, k, n, colour) in enumerate(rows):
        yc = p.Y(1.45 - i * 0.9)
        p.parts.append(
            f'<rect x="{PAD_L}" y="{yc - 13:.1f}" width="{max(0.5, p.X(ph) - PAD_L):.1f}" height="26" fill="{colour}" '
            f'opacity=".85"/>'
        )
        p.parts.append(
            f'<line x1="{p.X(lo):.1f}" x2="{p.X(hi):.1f}" y1="{yc:.1f}" y2="{yc:.1f}" stroke="#1f2328" '
            'stroke-width="1.5"/>'
            f'<line x1="{p.X(lo):.1f}" x2="{p.X(lo):.1f}" y1="{yc - 7:.1f}" y2="{yc + 7:.1f}" stroke="#1f2328"/>'
            f'<line x1="{p.X(hi):.1f}" x2="{p.X(hi):.1f}" y1="{yc - 7:.1f}" y2="{yc + 7:.1f}" stroke="#1f2328"/>'
        )
        p.parts.append(
            f'<text x="{PAD_L - 6}" y="{yc + 4:.1f}" font-size="11.5" text-anchor="end" fill="{colour}">{label}</text>'
            f'<text x="{min(p.X(hi) + 6, W - 150):.1f}" y="{yc - 16:.1f}" font-size="11" fill="#1f2328">'
            f"{ph * 100:.2f} % ({k}/{n})</text>"
        )
    p.vline(limit, "#c92a2a", "baseline + tolerance")
    return p.svg("proportions")


def buckets_chart(data: HistogramData, m: dict) -> str:
    if data.baseline_counts is None or data.canary_counts is None:
        return _empty("no histogram counts")
    bounds = np.asarray(data.bounds, float)
    cb = np.asarray(data.baseline_counts, float)
    cc = np.asarray(data.canary_counts, float)
    sb, sc = cb / max(cb.sum(), 1), cc / max(cc.sum(), 1)
    used = np.nonzero((cb + cc) > 0)[0]
    if used.size == 0:
        return _empty("no requests")
    first, last = int(used.min()), int(used.max())
    idx = list(range(first, last + 1))
    n = len(idx)
    top = max(float(sb[idx].max()), float(sc[idx].max())) * 1.15
    p = Plot(0, n, 0, top)
    p.axes(lambda v: "", lambda v: f"{v * 100:.0f} %", "share of requests per bucket (upper bound in ms)")
    thr_i = m.get("details", {}).get("threshold_index")
    bw = (p.X(1) - p.X(0)) * 0.38
    for j, i in enumerate(idx):
        xc = p.X(j + 0.5)
        if thr_i is not None and i > thr_i:
            p.parts.append(
                f'<rect x="{p.X(j):.1f}" y="{PAD_T}" width="{p.X(j + 1) - p.X(j):.1f}" height="{H - PAD_T - PAD_B}" '
                f'fill="#ffe3e3" opacity=".6"/>'
            )
        for share, colour, off in ((sb[i], BASE_C, -bw), (sc[i], CANARY_C, 0)):
            y = p.Y(share)
            p.parts.append(
                f'<rect x="{xc + off:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{max(0.0, H - PAD_B - y):.1f}" '
                f'fill="{colour}"/>'
            )
        label = "+Inf" if math.isinf(bounds[i]) else f"{float(bounds[i]) * 1000:g}"
        p.parts.append(
            f'<text x="{xc:.1f}" y="{H - PAD_B + 13}" font-size="9.5" text-anchor="middle" '
            f'fill="#6e7781">{label}</text>'
        )
    if thr_i is not None and first <= thr_i <= last:
        xx = p.X(thr_i - first + 1)
        p.parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="#c92a2a" stroke-dasharray="4 3"/>'
            f'<text x="{xx + 3:.1f}" y="{PAD_T + 10}" font-size="10.5" fill="#c92a2a">tail: slower than '
            f"{escape(fmt(float(bounds[thr_i]), 's'))}</text>"
        )
    return p.svg("latency buckets")


# --------------------------------------------------------------------------- page


def _badge(label: str) -> str:
    return f'<span class="badge" style="background:{VERDICT_C.get(label, "#5c5f66")}">{escape(label)}</span>'


def _metric_section(spec, m: dict, data, alpha_pass: float, fail_fraction: float) -> str:
    unit = spec.unit or ("ratio" if spec.kind in ("ratio", "histogram") else "")
    cls = m["classification"]
    head = (
        f'<section class="metric" style="border-left-color:{VERDICT_C.get(cls, "#ccc")}">'
        f"<h2>{escape(spec.name)} {_badge(cls)}{'<span class=crit>critical</span>' if spec.critical else ''}</h2>"
        f'<div class="desc">{escape(spec.description or spec.kind)} &middot; bad when it '
        f"{ {'increase': 'increases', 'decrease': 'decreases'}.get(spec.direction, 'moves either way') }"
        f" &middot; weight {spec.weight:g}</div>"
        f'<div class="why">{escape(m["reason"])}</div>'
    )
    gauge = (
        '<div class="chart" style="flex-basis:100%"><h3>Effect and its bounds against the tolerance</h3>'
        f"{effect_gauge(m, unit, fail_fraction)}</div>"
    )
    charts = [gauge]
    base_s = getattr(data, "baseline_series", None) if data is not None else None
    can_s = getattr(data, "canary_series", None) if data is not None else None
    if isinstance(data, ContinuousData):
        bl = m.get("baseline")
        tol = m.get("tolerance") or 0
        refs = []
        if bl is not None:
            refs.append((bl, BASE_C, "baseline median"))
            if spec.direction in ("increase", "either"):
                refs.append((bl + tol, "#c92a2a", "+ tolerance"))
        charts.append(f'<div class="chart"><h3>Per step</h3>{timeseries_chart(base_s, can_s, unit, refs)}</div>')
        marks = []
        if m.get("tail"):
            thr = m["tail"].get("threshold")
            if thr is not None:
                marks.append((thr, "#c92a2a", f"tail threshold q{m['tail'].get('quantile', 0):g}"))
        charts.append(
            f'<div class="chart"><h3>Distribution of the per-step values (ECDF)</h3>'
            f"{ecdf_chart(data.baseline, data.canary, unit, marks)}</div>"
        )
    elif isinstance(data, CountData):
        charts.append(f'<div class="chart"><h3>Per step</h3>{timeseries_chart(base_s, can_s, "ratio")}</div>')
        charts.append(
            f'<div class="chart"><h3>Over the window, from the counts</h3>{proportion_chart(m, alpha_pass)}</div>'
        )
    elif isinstance(data, HistogramData):
        thr = m.get("tail", {}).get("threshold")
        charts.append(
            f'<div class="chart"><h3>Per-step q{spec.tail_quantile:g} latency</h3>'
            f"{timeseries_chart(base_s, can_s, 's', [(thr, '#c92a2a', 'tail threshold')] if thr else [])}</div>"
        )
        charts.append(f'<div class="chart"><h3>Latency buckets over the window</h3>{buckets_chart(data, m)}</div>')
        charts.append(
            f'<div class="chart"><h3>Share of requests in the tail</h3>{proportion_chart(m, alpha_pass)}</div>'
        )
    else:
        charts.append(f'<div class="chart">{_empty("no data")}</div>')
    return head + '<div class="charts">' + "".join(charts) + "</div></section>"


def _summary_rows(specs, metrics) -> str:
    rows = []
    for spec, m in zip(specs, metrics, strict=True):
        unit = spec.unit or ("ratio" if spec.kind in ("ratio", "histogram") else "")
        p = m.get("p_value")
        rows.append(
            "<tr>"
            f"<td><a href='#m-{escape(spec.name)}'>{escape(spec.name)}</a>"
            f"{'<span class=crit>critical</span>' if spec.critical else ''}</td>"
            f"<td>{_badge(m['classification'])}</td>"
            f"<td class=num>{escape(fmt(m.get('baseline'), unit))}</td>"
            f"<td class=num>{escape(fmt(m.get('canary'), unit))}</td>"
            f"<td class=num>{escape(fmt_diff(_num(m.get('effect')), unit))} "
            f"<span style='color:#6e7781'>[{escape(fmt_diff(_num(m.get('lower')), unit))}, "
            f"{escape(fmt_diff(_num(m.get('upper')), unit))}]</span></td>"
            f"<td class=num>{escape(fmt(m.get('tolerance'), unit))}</td>"
            f"<td class=num>{'-' if p is None else f'{p:.2g}'}</td>"
            f"<td class=num>{m.get('n_baseline', 0)} / {m.get('n_canary', 0)}</td>"
            "</tr>"
        )
    return "".join(rows)


def _num(v):
    if isinstance(v, str):
        return math.inf if v == "inf" else -math.inf
    return math.nan if v is None else v


def render_html(analysis, title: str = "Canary analysis", config=None) -> str:
    """The whole page for an `analysis.Analysis`."""
    res = analysis.as_dict()
    verdict = res["verdict"]
    colour = VERDICT_C.get(verdict, "#5c5f66")
    w = analysis.window
    alpha_pass = 1.0 - (config.confidence if config else 0.975)
    fail_fraction = config.fail_fraction if config else 0.5
    # the culprits first: failed, then undecided, then the rest, each in the configured order
    rank = {"fail": 0, "inconclusive": 1, "marginal": 2, "pass": 3}
    pairs = sorted(
        zip(analysis.specs, res["metrics"], strict=True), key=lambda sm: rank.get(sm[1]["classification"], 4)
    )
    specs_sorted = [sm[0] for sm in pairs]
    metrics_sorted = [sm[1] for sm in pairs]
    sections = []
    for spec, m in pairs:
        sections.append(
            f'<a id="m-{escape(spec.name)}"></a>'
            + _metric_section(spec, m, analysis.data.get(spec.name), alpha_pass, fail_fraction)
        )
    lo, hi = res["score_range"]
    score_txt = f"score {res['score']:g}" + (f" (up to {hi:g} if the undecided metrics pass)" if hi != lo else "")
    notes = "".join(f"<li>{escape(n)}</li>" for n in res.get("notes", []) + res.get("prometheus_warnings", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}: {escape(verdict)}</title><style>{CSS}</style></head>
<body>
<header style="background:{colour}">
<h1>{escape(title)}</h1>
<div><span class="verdict">{escape(verdict)}</span><span class="score">{escape(score_txt)}</span></div>
<div class="reason">{escape(res["reason"])}</div>
<div class="meta">canary <b>{escape(res["selectors"]["canary"])}</b> against baseline
<b>{escape(res["selectors"]["baseline"])}</b> &middot; {escape(utc(w.start))} to {escape(utc(w.end))}
({w.duration / 60:.1f} min after a {w.warmup:g} s warm-up) &middot; step {w.step:g} s</div>
</header>
<main>
<div class="legend"><span style="background:{BASE_C}"></span>baseline<span style="background:{CANARY_C}"></span>canary
<span style="background:#c92a2a;height:2px"></span>tolerance / threshold
<span style="background:#fff3bf;height:10px"></span>may fail (above {fail_fraction:g} x tolerance, if significant)
<span style="background:#ffe3e3;height:10px"></span>beyond tolerance</div>
<table class="summary"><tr><th>metric</th><th>result</th><th>baseline</th><th>canary</th>
<th>effect [bounds]</th><th>tolerance</th><th>p</th><th>n baseline / canary</th></tr>
{_summary_rows(specs_sorted, metrics_sorted)}</table>
{"".join(sections)}
{f'<ul class="notes">{notes}</ul>' if notes else ""}
</main>
<footer>free4allweb.devops.canary_evaluate &middot; Mann-Whitney U with Hodges-Lehmann bounds for per-step
values; Fisher's exact test with Newcombe bounds for counts. A metric passes only when its upper bound is
within tolerance; it fails when the worsening is significant and its estimate exceeds {fail_fraction:g} x the
tolerance.</footer>
</body></html>
"""


# --------------------------------------------------------------------------- sequential judge


def _bound_chart(times: list[float], lower: list, upper: list, *, tolerance: float, fail_at: float, unit: str) -> str:
    """The confidence sequence of 'canary minus baseline' over the step, against the tolerance
    (pass below it) and the fail threshold (fail above it)."""
    vals = [v for v in [*lower, *upper] if v is not None and math.isfinite(v)]
    if not times or not vals:
        return _empty("no bounds yet (no data at any look)")
    lo = min([*vals, 0.0, -tolerance])
    hi = max([*[v for v in upper if v is not None and math.isfinite(v)], tolerance * 1.3, fail_at])
    lo = max(lo, -3 * tolerance) if tolerance > 0 else lo
    hi = min(hi, 4 * tolerance) if tolerance > 0 else hi
    t0, t1 = times[0], times[-1] if times[-1] > times[0] else times[0] + 1
    p = Plot(0.0, t1 - t0, lo, hi)
    p.axes(lambda s: f"{s:.0f} s", lambda v: fmt_diff(v, unit), "seconds since the first look")
    p.hline(tolerance, "#1a7f37", "tolerance: pass once the upper bound is below")
    p.hline(fail_at, "#cf222e", "fail once the lower bound is above")
    p.hline(0.0, "#8c959f")
    xs = [t - t0 for t in times]
    p.line(xs, [math.nan if v is None else v for v in upper], CANARY_C, step=True)
    p.line(xs, [math.nan if v is None else v for v in lower], BASE_C, step=True)
    return p.svg("confidence sequence")


def render_sequential_html(result: dict, title: str = "Canary step", fail_fraction: float = 0.5) -> str:
    """A self-contained page for one watched step: the verdict, and per metric and route the
    bounds on 'canary minus baseline' at every look against the tolerance."""
    history = result.get("history") or []
    units = {"error_ratio": "ratio", "latency_p95": "s", "latency_p99": "s"}
    series: dict[tuple[str, str], dict] = {}
    for look in history:
        for metric, per in (look.get("metrics") or {}).items():
            for route, v in per.items():
                s = series.setdefault((metric, route), {"t": [], "lo": [], "hi": [], "tol": v["tolerance"]})
                s["t"].append(look["at"])
                s["lo"].append(v["lower"])
                s["hi"].append(v["upper"])
                s["tol"] = v["tolerance"]
                s["last"] = v["decision"]
    verdict = escape(str(result.get("verdict", "?")))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#1f2328;max-width:900px}"
        ".v{font-weight:600}.fail{color:#cf222e}.pass{color:#1a7f37}.inconclusive{color:#9a6700}"
        "section{margin:18px 0;border-top:1px solid #d0d7de;padding-top:8px}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='v {verdict}'>verdict: {verdict}</p>",
        f"<p>{escape(str(result.get('reason', '')))}</p>",
        f"<p>{len(history)} looks, one every {escape(str(result.get('look_interval')))} s; decided "
        f"{escape(str(result.get('took')))} s after the step began. Each chart is the anytime-valid "
        "confidence sequence of the canary minus the baseline (upper bound in the canary's colour, lower in "
        "the baseline's): its error rates hold at every look.</p>",
    ]
    for (metric, route), s in sorted(series.items(), key=lambda kv: (kv[1].get("last") != "fail", kv[0])):
        unit = units.get(metric, "")
        parts.append(
            f"<section id='m-{escape(metric)}-{escape(route)}'><h2>{escape(metric)} - {escape(route)}: "
            f"<span class='{escape(s.get('last', ''))}'>{escape(s.get('last', ''))}</span></h2>"
        )
        parts.append(
            _bound_chart(s["t"], s["lo"], s["hi"], tolerance=s["tol"], fail_at=fail_fraction * s["tol"], unit=unit)
        )
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)
