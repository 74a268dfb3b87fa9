"""A small client for the Prometheus HTTP API: instant and range queries.

Every problem (unreachable server, TLS, authentication, HTTP errors, a Prometheus error answer,
something that is not the Prometheus API at all) raises PrometheusError with a message meant for
the operator. A caller judging a canary must treat that as a failure, never as a pass.

Plain Python on `requests`; no Ansible imports.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - requests is in the controller's requirements
    HAS_REQUESTS = False

# Prometheus refuses range queries above 11,000 points per series.
MAX_POINTS = 11000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class PrometheusError(Exception):
    """Prometheus could not answer a query. The message says what went wrong and where."""


def parse_duration(value) -> float:
    """Seconds from a number or a Prometheus duration such as '30s', '5m', '1h30m', '250ms'."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return parse_duration(number)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h)")
    return total


def parse_time(value, now: float | None = None) -> float:
    """Unix seconds from a number, 'now', 'now-5m', or an RFC 3339 / ISO 8601 timestamp."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    now = _dt.datetime.now(_dt.UTC).timestamp() if now is None else now
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use unix seconds, 'now', 'now-5m' or RFC 3339)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.timestamp()


def format_duration(seconds: float) -> str:
    """A PromQL duration literal for a number of seconds (whole milliseconds)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass
class Series:
    """One time series from a query: its labels and (timestamp, value) samples."""

    labels: dict
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def _value(text) -> float:
    # Prometheus sends numbers as strings: "1.5", "NaN", "+Inf", "-Inf"
    try:
        return float(text)
    except (TypeError, ValueError):
        raise PrometheusError(f"unexpected sample value {text!r} in the Prometheus answer") from None


class PrometheusClient:
    """Talks to one Prometheus server (or anything serving its HTTP API: Thanos, Mimir, VictoriaMetrics)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        ca_path: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 30.0,
        headers: dict | None = None,
    ):
        if not HAS_REQUESTS:
            raise PrometheusError("the Python library 'requests' is required to query Prometheus")
        if not url or not re.match(r"^https?://", url):
            raise PrometheusError(f"the Prometheus URL must start with http:// or https://, not {url!r}")
        if token and (username or password):
            raise PrometheusError("use either a bearer token or basic auth (username/password), not both")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if username is not None or password is not None:
            self.session.auth = (username or "", password or "")
        self.session.verify = ca_path if (ca_path and validate_certs) else bool(validate_certs)
        if client_cert:
            self.session.cert = (client_cert, client_key) if client_key else client_cert
        self.warnings: list[str] = []

    def close(self):
        self.session.close()

    # ------------------------------------------------------------------ transport

    def _call(self, path: str, params: dict) -> dict:
        where = f"{self.url}{path}"
        try:
            resp = self.session.post(where, data=params, timeout=self.timeout)
        except requests.exceptions.SSLError as e:
            raise PrometheusError(f"TLS error talking to Prometheus at {self.url}: {e}") from None
        except requests.exceptions.Timeout:
            raise PrometheusError(f"Prometheus at {self.url} did not answer within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as e:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {_short(e)}") from None
        except requests.exceptions.RequestException as e:
            raise PrometheusError(f"request to Prometheus at {self.url} failed: {_short(e)}") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {self.url} refused the request (HTTP {resp.status_code}): "
                "check the token or credentials"
            )
        if isinstance(body, dict) and body.get("status") == "error":
            raise PrometheusError(
                f"Prometheus rejected the query (HTTP {resp.status_code}, {body.get('errorType', 'error')}): "
                f"{body.get('error', 'no message')}; query: {params.get('query', '')}"
            )
        if resp.status_code != 200:
            raise PrometheusError(f"Prometheus at {where} answered HTTP {resp.status_code}: {_snippet(resp.text)}")
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
            raise PrometheusError(
                f"{where} did not answer like the Prometheus API (is the URL right?): {_snippet(resp.text)}"
            )
        for w in body.get("warnings") or []:
            self.warnings.append(str(w))
        return body["data"]

    # ------------------------------------------------------------------ queries

    def query(self, promql: str, time: float | None = None) -> list[Series]:
        """An instant query; a vector or a scalar answer, as a list of series with one sample each."""
        params = {"query": promql}
        if time is not None:
            params["time"] = f"{time:.3f}"
        data = self._call("/api/v1/query", params)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [
                    Series(dict(item.get("metric") or {}), [float(item["value"][0])], [_value(item["value"][1])])
                    for item in result
                ]
            if kind == "scalar":
                return [Series({}, [float(result[0])], [_value(result[1])])]
        except (KeyError, IndexError, TypeError):
            raise PrometheusError(f"malformed instant-query answer from Prometheus for: {promql}") from None
        raise PrometheusError(f"expected a vector or scalar from the instant query, got {kind!r}: {promql}")

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """A range query evaluated at start, start+step, ... <= end."""
        if step <= 0:
            raise PrometheusError("the query step must be positive")
        if end < start:
            raise PrometheusError("the query window ends before it starts")
        points = int((end - start) // step) + 1
        if points > MAX_POINTS:
            raise PrometheusError(
                f"{points} points per series exceed Prometheus' limit of {MAX_POINTS}: raise the step"
            )
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._call("/api/v1/query_range", params)
        kind, result = data.get("resultType"), data.get("result")
        if kind != "matrix":
            raise PrometheusError(f"expected a matrix from the range query, got {kind!r}: {promql}")
        out = []
        try:
            for item in result:
                values = item.get("values") or []
                out.append(
                    Series(
                        dict(item.get("metric") or {}), [float(v[0]) for v in values], [_value(v[1]) for v in values]
                    )
                )
        except (KeyError, IndexError, TypeError, AttributeError):
            raise PrometheusError(f"malformed range-query answer from Prometheus for: {promql}") from None
        return out


def _short(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"\[Errno [^\]]+\] [^')\"]+", text)
    if m:
        return m.group(0)
    return text[:300]


def _snippet(text: str) -> str:
    text = " ".join((text or "").split())
    return (text[:200] + "...") if len(text) > 200 else (text or "(empty body)")
