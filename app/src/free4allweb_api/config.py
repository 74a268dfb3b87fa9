"""Settings, read once from the environment (the app role writes them to an environment file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from free4allweb_api._version import __version__


def _ratio(name: str, raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {raw!r}")
    return value


def _non_negative(name: str, raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {raw!r}")
    return value


def _flag(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Faults:
    """Fault injection, used to produce a bad release on purpose.

    error_ratio: share of /api requests answered with HTTP 500.
    latency_ms: delay added to every /api request (moves the median).
    tail_ratio, tail_latency_ms: share of /api requests that get an extra delay (a heavier tail
        with the same median when tail_ratio is below one half).
    ready_fail: /ready always answers 503.
    """

    error_ratio: float = 0.0
    latency_ms: float = 0.0
    tail_ratio: float = 0.0
    tail_latency_ms: float = 0.0
    ready_fail: bool = False
    # a share of API requests answered 500 outside the app's own metrics, as a failure below the
    # app's instrumentation would be (a crash answered by the web server). Only the load
    # balancer counts these. (They carry the version headers, so tests can tell whose they are.)
    hidden_error_ratio: float = 0.0

    @property
    def active(self) -> bool:
        return bool(
            self.error_ratio or self.latency_ms or self.tail_ratio or self.ready_fail or self.hidden_error_ratio
        )


@dataclass(frozen=True)
class Settings:
    database_url: str
    version: str = __version__
    colour: str = ""
    db_pool_min: int = 1
    db_pool_max: int = 5
    db_timeout_s: float = 2.0
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        url = env.get("DATABASE_URL", "")
        if not url:
            raise ValueError("DATABASE_URL is required")
        faults = Faults(
            error_ratio=_ratio("F4A_FAULT_ERROR_RATIO", env.get("F4A_FAULT_ERROR_RATIO", "0")),
            latency_ms=_non_negative("F4A_FAULT_LATENCY_MS", env.get("F4A_FAULT_LATENCY_MS", "0")),
            tail_ratio=_ratio("F4A_FAULT_TAIL_RATIO", env.get("F4A_FAULT_TAIL_RATIO", "0")),
            tail_latency_ms=_non_negative("F4A_FAULT_TAIL_LATENCY_MS", env.get("F4A_FAULT_TAIL_LATENCY_MS", "0")),
            ready_fail=_flag(env.get("F4A_FAULT_READY_FAIL", "false")),
            hidden_error_ratio=_ratio("F4A_FAULT_HIDDEN_ERROR_RATIO", env.get("F4A_FAULT_HIDDEN_ERROR_RATIO", "0")),
        )
        return cls(
            database_url=url,
            colour=env.get("F4A_COLOUR", ""),
            db_pool_min=int(env.get("F4A_DB_POOL_MIN", "1")),
            db_pool_max=int(env.get("F4A_DB_POOL_MAX", "5")),
            db_timeout_s=float(env.get("F4A_DB_TIMEOUT_S", "2")),
            faults=faults,
        )
