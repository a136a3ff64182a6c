"""Alert rules: the `monitor:` section of a pipeline spec, checked into `MonitorConfig` and `Rule`s.

    monitor:
      window: 500            # rows per drift window
      min_rows: 200
      rules:
        - {name: feature-drift, metric: psi, op: ">", threshold: 0.25, any_feature: true, for_windows: 2, action: retrain}
        - {name: accuracy-low, metric: accuracy_lower, op: "<", threshold: 0.9}
        - {name: errors, metric: error_rate, op: ">", threshold: 0.01}
        - {name: latency, metric: latency_p99_ms, op: ">", threshold: 50}
      retention: {max_rows: 100_000, max_age_days: 30, max_mb: 256}   # this deployment's log and labels

Standard library only: the pipeline spec loader checks a spec's `monitor:` section with this module
when it reads the spec, and a fully cached `aidevops run` must not import NumPy. Evaluation of the
rules (which needs NumPy) lives in `alerts.py`.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aidevops_ext.errors import ConfigError

from .defaults import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_LABELS,
    DEFAULT_MIN_ROWS,
    DEFAULT_PSI_BANDS,
    DEFAULT_WASSERSTEIN_THRESHOLD,
)

__all__ = [
    "FEATURE_METRICS",
    "METRICS",
    "MonitorConfig",
    "Retention",
    "Rule",
    "parse_monitor",
    "parse_retention",
    "parse_rule",
]

# Per-feature drift metrics: a rule on one needs `any_feature: true` or `feature: NAME`.
FEATURE_METRICS = {
    "psi": "population stability index on the reference bins",
    "chi2_pvalue": "chi-square test p-value on the PSI bins",
    "ks_statistic": "Kolmogorov-Smirnov statistic",
    "ks_pvalue": "Kolmogorov-Smirnov p-value",
    "wasserstein_std": "Wasserstein-1 distance over the reference std",
    "mean_shift_std": "mean shift in reference stds (signed)",
    "std_ratio": "window std over reference std",
    "missing_rate": "share of missing values in the window",
    "missing_change": "missing rate minus the reference's (signed)",
}
METRICS = {
    **FEATURE_METRICS,
    "rows": "rows in the drift window",
    "drifted_features": "number of features flagged as drifted",
    "drifted_share": "share of features flagged as drifted",
    "max_psi": "largest PSI over the features",
    "prediction_psi": "PSI of the prediction distribution",
    "prediction_pvalue": "p-value of the prediction drift test (chi-square or KS)",
    "prediction_effect": "prediction drift effect size (Cramer's V or Wasserstein / std)",
    "prediction_drifted": "1 when the predictions drifted, else 0",
    "accuracy": "live accuracy over the labelled window",
    "accuracy_lower": "lower confidence bound of live accuracy",
    "accuracy_upper": "upper confidence bound of live accuracy",
    "labelled": "labelled requests in the quality window",
    "label_rate": "share of the window's requests that have a label",
    "mae": "live mean absolute error",
    "mae_lower": "lower confidence bound of the MAE",
    "mae_upper": "upper confidence bound of the MAE",
    "rmse": "live root mean squared error",
    "rmse_lower": "lower confidence bound of the RMSE",
    "rmse_upper": "upper confidence bound of the RMSE",
    "bias": "mean of prediction - label",
    "requests": "requests in the window",
    "errors": "failed requests in the window",
    "error_rate": "share of failed requests (0.01 = 1 %)",
    "error_rate_lower": "lower confidence bound of the error rate",
    "error_rate_upper": "upper confidence bound of the error rate",
    "latency_mean_ms": "mean latency",
    "latency_p50_ms": "median latency",
    "latency_p90_ms": "90th percentile latency",
    "latency_p95_ms": "95th percentile latency",
    "latency_p99_ms": "99th percentile latency",
    "latency_max_ms": "largest latency",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_ACTIONS = ("notify", "retrain")
_RULE_KEYS = {
    "name",
    "metric",
    "op",
    "threshold",
    "for_windows",
    "resolve_windows",
    "any_feature",
    "feature",
    "action",
    "description",
}
_MONITOR_KEYS = {
    "window",
    "min_rows",
    "min_labels",
    "psi_bands",
    "alpha",
    "wasserstein_threshold",
    "rules",
    "retention",
}
_RETENTION_KEYS = {"max_rows", "max_age_days", "max_mb"}

OK, FIRING, RESOLVED = "ok", "firing", "resolved"


# --------------------------------------------------------------------------- rules and config


@dataclass(frozen=True)
class Rule:
    """One alert rule: `metric op threshold` for `for_windows` consecutive windows."""

    name: str
    metric: str
    op: str
    threshold: float
    for_windows: int = 1
    resolve_windows: int = 1
    any_feature: bool = False
    feature: str | None = None
    action: str = "notify"  # "notify" | "retrain": what loop.py does when it fires
    description: str = ""

    @property
    def per_feature(self) -> bool:
        """Whether the rule reads a per-feature drift metric."""
        return self.metric in FEATURE_METRICS

    def to_dict(self) -> dict:
        """JSON-able dict (the spec form)."""
        return asdict(self)


@dataclass(frozen=True)
class Retention:
    """How much of one deployment's traffic deploy.db keeps (serving/compaction.py enforces it in the server).

    The request log and the feedback labels each keep at most `max_rows` rows, none older than
    `max_age_days`; the request log's rows also weigh at most `max_mb` together (a logged request weighs
    ~0.5 KB plus its logged inputs and predictions, so rows alone do not bound the file). The oldest go first.
    The defaults bound one deployment to a few hundred MB of a laptop's disk.
    """

    max_rows: int = 100_000
    max_age_days: float = 30.0
    max_mb: float = 256.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)

    @property
    def max_age_seconds(self) -> float:
        return self.max_age_days * 86400.0


@dataclass(frozen=True)
class MonitorConfig:
    """The `monitor:` section of a pipeline spec, checked."""

    window: int = 500
    min_rows: int = DEFAULT_MIN_ROWS
    min_labels: int = DEFAULT_MIN_LABELS
    psi_bands: tuple[float, float] = DEFAULT_PSI_BANDS
    alpha: float = DEFAULT_ALPHA
    wasserstein_threshold: float = DEFAULT_WASSERSTEIN_THRESHOLD
    rules: tuple[Rule, ...] = ()
    retention: Retention = Retention()

    def drift_options(self) -> dict:
        """Keyword arguments for feature_drift / prediction_drift."""
        return {name: getattr(self, name) for name in ("min_rows", "psi_bands", "alpha", "wasserstein_threshold")}

    def to_dict(self) -> dict:
        """JSON-able dict (the spec form)."""
        return {**asdict(self), "psi_bands": list(self.psi_bands), "rules": [r.to_dict() for r in self.rules]}


def _where(ctx: str) -> str:
    return f"monitor: {ctx}"


def _int(ctx: str, key: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{_where(ctx)} {key} must be an integer >= {minimum}, got {v!r}.")
    return v


def _float(ctx: str, key: str, v: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo < v < hi:
        rng = "" if (lo, hi) == (-math.inf, math.inf) else f" in ({lo:g}, {hi:g})"
        raise ConfigError(f"{_where(ctx)} {key} must be a finite number{rng}, got {v!r}.")
    return float(v)


def _unknown(ctx: str, keys: Any, allowed: set[str]) -> None:
    extra = sorted(str(k) for k in keys if k not in allowed)
    if extra:
        hint = difflib.get_close_matches(extra[0], sorted(allowed), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{_where(ctx)} has unknown keys {extra}{did}; allowed: {sorted(allowed)}.")


def parse_rule(raw: Any, index: int = 0) -> Rule:
    """Check one rule dict from the spec and return it as a Rule."""
    ctx = f"rule {index + 1}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{_where(ctx)} must be a mapping like {{name: ..., metric: psi, op: '>', threshold: 0.25}}.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{_where(ctx)} needs a name (a non-empty string); alert state is kept by name.")
    ctx = f"rule {name!r}"
    _unknown(ctx, raw.keys(), _RULE_KEYS)
    metric = raw.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        hint = difflib.get_close_matches(str(metric), sorted(METRICS), n=1)
        did = f"did you mean {hint[0]!r}? " if hint else ""
        raise ConfigError(f"{_where(ctx)} metric {metric!r} is not known; {did}known metrics: {sorted(METRICS)}.")
    op = raw.get("op")
    if op not in _OPS:
        raise ConfigError(f"{_where(ctx)} op {op!r} is not valid; use one of {list(_OPS)} (quote it in YAML).")
    if "threshold" not in raw:
        raise ConfigError(f"{_where(ctx)} needs a threshold (a number).")
    threshold = _float(ctx, "threshold", raw["threshold"])
    for_windows = _int(ctx, "for_windows", raw.get("for_windows", 1))
    resolve_windows = _int(ctx, "resolve_windows", raw.get("resolve_windows", 1))
    any_feature = raw.get("any_feature", False)
    if not isinstance(any_feature, bool):
        raise ConfigError(f"{_where(ctx)} any_feature must be true or false, got {any_feature!r}.")
    feature = raw.get("feature")
    if feature is not None and not isinstance(feature, str):
        raise ConfigError(f"{_where(ctx)} feature must be a feature name (a string), got {feature!r}.")
    if metric in FEATURE_METRICS:
        if any_feature == (feature is not None):
            raise ConfigError(
                f"{_where(ctx)} metric {metric!r} is per feature: set exactly one of `any_feature: true` or `feature: NAME`."
            )
    elif any_feature or feature is not None:
        raise ConfigError(f"{_where(ctx)} metric {metric!r} is not per feature; drop any_feature/feature.")
    action = raw.get("action", "notify")
    if action not in _ACTIONS:
        raise ConfigError(f"{_where(ctx)} action {action!r} is not valid; use one of {list(_ACTIONS)}.")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{_where(ctx)} description must be a string.")
    return Rule(
        name.strip(), metric, op, threshold, for_windows, resolve_windows, any_feature, feature, action, description
    )


def parse_retention(raw: Any) -> Retention:
    """Check the `retention:` mapping of the `monitor:` section (None: the defaults)."""
    if raw is None:
        return Retention()
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"monitor: retention must be a mapping like {{max_rows: 100000, max_age_days: 30, max_mb: 256}}, got {raw!r}."
        )
    _unknown("retention", raw.keys(), _RETENTION_KEYS)
    d = Retention()
    return Retention(
        max_rows=_int("retention", "max_rows", raw.get("max_rows", d.max_rows), 100),
        max_age_days=_float("retention", "max_age_days", raw.get("max_age_days", d.max_age_days), 0.0, 36500.0),
        max_mb=_float("retention", "max_mb", raw.get("max_mb", d.max_mb), 0.0, 1024.0 * 1024.0),
    )


def parse_monitor(raw: Any) -> MonitorConfig:
    """Check a pipeline spec's `monitor:` section (None: defaults, no rules) and return it."""
    if raw is None:
        return MonitorConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError("monitor: must be a mapping with window, min_rows and rules; see the design page §7.")
    _unknown("section", raw.keys(), _MONITOR_KEYS)
    d = MonitorConfig()
    window = _int("section", "window", raw.get("window", d.window))
    min_rows = _int("section", "min_rows", raw.get("min_rows", d.min_rows))
    if window < min_rows:
        raise ConfigError(
            f"monitor: window ({window} rows) is below min_rows ({min_rows}): every window would be "
            "'insufficient data'; raise window or lower min_rows."
        )
    bands = raw.get("psi_bands", list(d.psi_bands))
    if not isinstance(bands, (list, tuple)) or len(bands) != 2:
        raise ConfigError(f"monitor: psi_bands must be two numbers [moderate, major], got {bands!r}.")
    b0, b1 = (_float("section", "psi_bands", b, 0.0) for b in bands)
    if not b0 < b1:
        raise ConfigError(f"monitor: psi_bands must increase (moderate < major), got {bands!r}.")
    rules_raw = raw.get("rules", []) or []
    if not isinstance(rules_raw, list):
        raise ConfigError("monitor: rules must be a list of rule mappings.")
    rules = tuple(parse_rule(r, i) for i, r in enumerate(rules_raw))
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise ConfigError(f"monitor: two rules are named {r.name!r}; give each rule its own name.")
        seen.add(r.name)
    retention = parse_retention(raw.get("retention"))
    if retention.max_rows < window:
        raise ConfigError(
            f"monitor: retention max_rows ({retention.max_rows}) is below window ({window} rows), so no window "
            "would ever fill; raise max_rows or lower window."
        )
    return MonitorConfig(
        window=window,
        min_rows=min_rows,
        min_labels=_int("section", "min_labels", raw.get("min_labels", d.min_labels)),
        psi_bands=(b0, b1),
        alpha=_float("section", "alpha", raw.get("alpha", d.alpha), 0.0, 1.0),
        wasserstein_threshold=_float(
            "section", "wasserstein_threshold", raw.get("wasserstein_threshold", d.wasserstein_threshold), 0.0
        ),
        rules=rules,
        retention=retention,
    )
