"""Settings of one model server (all have defaults; the CLI and the deployment manager override them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError

ADMIN_TOKEN_ENV = "AIDEVOPS_SERVING_ADMIN_TOKEN"
FEEDBACK_TOKEN_ENV = "AIDEVOPS_FEEDBACK_TOKEN"  # aidevops_ext/tokens.py: who may send labels to /feedback
ALLOWED_HOSTS_ENV = "AIDEVOPS_ALLOWED_HOSTS"  # comma-separated Host names answered besides the loopback ones
MONITOR_SECONDS_ENV = "AIDEVOPS_MONITOR_SECONDS"  # how often the live monitor refreshes (0 disables)
MB = 1024 * 1024


@dataclass(frozen=True)
class ServingConfig:
    """Limits, request-log sampling, admin access and alias following for one server."""

    max_body_bytes: int = 10 * MB
    # Request log: a fraction of requests is logged, at most `log_max_per_second` of them, each
    # with at most `log_max_rows` input rows (predictions are always kept whole).
    log_requests: bool = True
    log_sample_rate: float = 1.0
    log_max_per_second: float = 1000.0
    log_max_rows: int = 100
    log_queue_size: int = 10_000
    log_flush_seconds: float = 0.5
    # Admin API (/admin/...): disabled unless a token is set; requests carry `Authorization: Bearer <token>`.
    admin_token: str | None = field(default=None, repr=False)
    # POST /feedback: disabled unless a token is set; requests carry `Authorization: Bearer <token>`.
    feedback_token: str | None = field(default=None, repr=False)
    # Host names answered besides 127.0.0.1, localhost and [::1] (any port): exact names, ".example.com" for a
    # domain and its subdomains, or "*" for any (a server behind a proxy that checks Host itself).
    allowed_hosts: tuple[str, ...] = ()
    # Poll the registry every N seconds and switch when the served alias moves (0 disables).
    follow_alias_seconds: float = 30.0
    # Requests with more feature values than this are predicted in a worker thread, not on the event loop.
    inline_values: int = 200_000
    # BLAS threads in the serving process, and OpenMP threads in a foreign model's prediction thread
    # (serving/batching.py): one worker on shared cores gains nothing from more.
    blas_threads: int | None = 1
    # Live monitor: drift, live quality and alert rules over the request log, every N seconds (0 disables).
    monitor_seconds: float = 5.0
    # Processes writing this server's request log (`serve --workers N`: N). With more than one, a label for a
    # request id this process has not seen waits up to two log flushes for the worker that answered it.
    log_writers: int = 1

    def __post_init__(self) -> None:
        checks: list[tuple[str, Any, bool]] = [
            ("max_body_bytes", self.max_body_bytes, isinstance(self.max_body_bytes, int) and self.max_body_bytes > 0),
            ("log_sample_rate", self.log_sample_rate, 0.0 <= float(self.log_sample_rate) <= 1.0),
            ("log_max_per_second", self.log_max_per_second, float(self.log_max_per_second) >= 0),
            ("log_max_rows", self.log_max_rows, isinstance(self.log_max_rows, int) and self.log_max_rows >= 0),
            ("log_queue_size", self.log_queue_size, isinstance(self.log_queue_size, int) and self.log_queue_size > 0),
            ("log_flush_seconds", self.log_flush_seconds, float(self.log_flush_seconds) > 0),
            ("follow_alias_seconds", self.follow_alias_seconds, float(self.follow_alias_seconds) >= 0),
            ("monitor_seconds", self.monitor_seconds, float(self.monitor_seconds) >= 0),
            ("log_writers", self.log_writers, isinstance(self.log_writers, int) and self.log_writers >= 1),
        ]
        hosts = self.allowed_hosts
        checks.append(
            (
                "allowed_hosts",
                hosts,
                isinstance(hosts, tuple) and all(isinstance(h, str) and h and h == h.strip() for h in hosts),
            )
        )
        for name, value, ok in checks:
            if not ok:
                raise ConfigError(
                    f"Serving setting {name}={value!r} is out of range; see ServingConfig for valid values."
                )

    @classmethod
    def from_env(cls, **overrides: Any) -> ServingConfig:
        """Defaults, the admin and feedback tokens and allowed hosts from the environment (AIDEVOPS_SERVING_ADMIN_TOKEN,
        AIDEVOPS_FEEDBACK_TOKEN, AIDEVOPS_ALLOWED_HOSTS), then explicit overrides (None = keep)."""
        base = cls(
            admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
            feedback_token=os.environ.get(FEEDBACK_TOKEN_ENV, "").strip() or None,
            allowed_hosts=parse_hosts(os.environ.get(ALLOWED_HOSTS_ENV, "")),
        )
        raw = os.environ.get(MONITOR_SECONDS_ENV, "").strip()
        if raw:
            try:
                base = replace(base, monitor_seconds=float(raw))
            except ValueError:
                raise ConfigError(
                    f"{MONITOR_SECONDS_ENV}={raw!r} is not a number of seconds; unset it or give e.g. 5."
                ) from None
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def parse_hosts(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Host names from a comma-separated text or a list: lowercased, without a port, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    hosts: list[str] = []
    for item in items:
        host = str(item).strip().lower()
        if host.startswith("[") and "]" in host:  # [::1]:8080 -> ::1
            host = host[1 : host.index("]")]
        elif host.count(":") == 1:  # name:port -> name
            host = host.split(":", 1)[0]
        if not host:
            continue
        if any(c.isspace() or c in "/@?#" for c in host):
            raise ConfigError(
                f"Allowed host {str(item)[:80]!r} is not a host name; give names like model.example.com or 10.0.0.7."
            )
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)
