"""Quality-gate rules and decisions: may this candidate model replace the champion?

The vocabulary is MLflow's `MetricThreshold` (threshold, min_absolute_change,
min_relative_change, greater_is_better); this module is pure Python so the pipeline,
the CLI and the panels can evaluate and display gates without importing MLflow.

Semantics, per metric (mirrored when `greater_is_better` is false):

* threshold: the candidate must be >= `threshold` (<= when lower is better).
* min_absolute_change (only when a champion with that metric exists): the improvement
  `candidate - champion` (`champion - candidate` when lower is better) must be
  >= `min_absolute_change`. As in MLflow, a positive value means "must improve by at
  least"; unlike MLflow, a negative value is allowed and is a tolerance: -0.005 lets the
  candidate lose up to half a point of accuracy.
* min_relative_change (likewise): the improvement divided by |champion| must be
  >= `min_relative_change` (0.01 = one percent better; negative = tolerated loss).
  A champion value of 0 makes the ratio 0 for a tie and +/-infinity otherwise.
* A metric missing from the candidate (or not a number) fails the gate.
* With no champion (the first model), only thresholds apply. When a champion exists
  but lacks a metric, that metric's comparison is skipped (recorded as such) so that
  adding a metric to a gate does not block every future candidate.

Comparisons forgive float rounding (1e-9 relative), so 0.9 - 0.905 meets -0.005.

Fair comparison (docs/architecture.md, "Data flow of a pipeline run"): the candidate and the champion are
scored on the *same* test rows, and only on rows neither trained on. The test rows come from the
fixed key rule of aidevops_ext/splitting.py, so they do not follow the training seed; the rows that
still overlap (the champion's recorded training keys, the candidate's own live training rows) are
left out by aidevops_ext/evaluation.py, which hands the counts to `evaluate_gate` as `comparison`.
When overlap leaves fewer than `min_compared_rows` (MIN_COMPARED_ROWS = 100, or half the test split
when that is smaller) the gate refuses: it fails with the one sentence saying so, and no metric
check runs, because a difference measured on a handful of rows is noise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError
from .finite import is_finite_number

__all__ = [
    "Threshold",
    "Check",
    "GateDecision",
    "parse_gate",
    "evaluate_gate",
    "lower_is_better_default",
    "min_compared_rows",
    "MIN_COMPARED_ROWS",
]

#: Fewest test rows a champion comparison may rest on once overlapping rows are left out.
MIN_COMPARED_ROWS = 100

_CRITERIA = ("threshold", "min_absolute_change", "min_relative_change")
_KEYS = (*_CRITERIA, "greater_is_better")
# MLflow accepts these characters in metric and tag names; a gate naming anything else
# could never match a logged metric, and its tags would be rejected.
_METRIC_NAME = re.compile(r"^[\w.\-/ ]{1,200}$")
# Losses and errors default to lower-is-better when a spec does not say, because
# `log_loss: {threshold: 0.5}` meaning "at least 0.5" would be a silent trap.
_LOWER_IS_BETTER = {"log_loss", "loss", "val_loss", "mse", "rmse", "mae", "max_error"}


def lower_is_better_default(metric: str) -> bool:
    """Whether a metric is a loss/error (lower is better) when the gate spec does not say."""
    name = metric.lower()
    return name in _LOWER_IS_BETTER or name.endswith(("_loss", "_error"))


@dataclass(frozen=True)
class Threshold:
    """One metric's gate criteria, in MLflow's MetricThreshold vocabulary."""

    metric: str
    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool = True


@dataclass(frozen=True)
class Check:
    """One evaluated criterion.

    kind is "threshold", "absolute_change", "relative_change" or "missing" (the candidate
    lacks the metric). For change checks `actual` is the improvement over the champion
    (positive = better, whatever the metric's direction) and `required` its minimum.
    """

    metric: str
    kind: str
    required: float | None
    actual: float | None
    passed: bool
    reason: str


@dataclass
class GateDecision:
    """The outcome of a gate: every check, and the metrics it was judged on."""

    passed: bool
    checks: list[Check] = field(default_factory=list)
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    #: The rows both were scored on: test_rows, compared_rows, candidate_trained, champion_trained,
    #: champion_lineage (whether the champion's training keys were known); None when not recorded.
    comparison: dict[str, Any] | None = None

    @property
    def failed_checks(self) -> list[Check]:
        """Checks that failed."""
        return [c for c in self.checks if not c.passed]

    @property
    def reasons(self) -> list[str]:
        """Why: the failing checks' sentences, or every sentence when the gate passed."""
        note = self.lineage_note()
        if not self.passed:
            return [c.reason for c in self.failed_checks] + ([note] if note else [])
        reasons = [c.reason for c in self.checks]
        if self.champion is None:
            reasons.append("No champion yet: judged on absolute thresholds alone.")
        if not self.checks:
            reasons.append("The gate has no criteria, so every candidate passes.")
        if note:
            reasons.append(note)
        return reasons

    def lineage_note(self) -> str | None:
        """A sentence when the champion's training rows were unknown, so overlap could not be ruled out."""
        c = self.comparison or {}
        if self.champion is not None and c and c.get("champion_lineage") is False:
            who = f"Champion v{self.champion_version}" if self.champion_version else "The champion"
            return (
                f"{who} recorded no training row keys, so rows it trained on may be among the "
                f"{c.get('compared_rows')} compared; re-register it with a keyed split to rule that out."
            )
        return None

    def compared_on(self) -> str | None:
        """One line: which rows candidate and champion were compared on."""
        c = self.comparison
        if not c or c.get("compared_rows") is None:
            return None
        n, total = c.get("compared_rows"), c.get("test_rows")
        of = f" of {total}" if total is not None and total != n else ""
        if self.champion is None:
            return f"{n}{of} test rows the candidate never trained on"
        left = []
        if c.get("champion_trained"):
            left.append(f"{c['champion_trained']} the champion trained on")
        if c.get("candidate_trained"):
            left.append(f"{c['candidate_trained']} the candidate trained on")
        out = f"the same {n}{of} test rows for candidate and champion"
        if c.get("champion_lineage") is False:
            return out + " (the champion's training rows are not recorded)"
        return out + ", none of which either trained on" + (f" (left out: {', '.join(left)})" if left else "")

    def headline(self, metric: str | None = None) -> str | None:
        """`accuracy 0.9638 vs v1 0.9499 on 359 rows`: the gate's own comparison, for a badge."""
        names = [metric] if metric else _metrics_in_order(self.checks) or sorted(self.candidate)
        names = [m for m in names if m in self.candidate]
        if not names:
            return None
        m = names[0]
        text = f"{m} {self.candidate[m]:.4f}"
        if self.champion is not None and m in self.champion:
            who = f"v{self.champion_version}" if self.champion_version else "champion"
            text += f" vs {who} {self.champion[m]:.4f}"
        n = (self.comparison or {}).get("compared_rows")
        return text + (f" on {n} rows" if n is not None else "")

    def summary(self) -> str:
        """One line: passed/failed and the first reason."""
        verdict = "passed" if self.passed else "failed"
        first = self.reasons[0] if self.reasons else ""
        return f"Gate {verdict}: {first}".rstrip(": ")

    def to_tags(self) -> dict[str, str]:
        """Flat string tags for an MLflow model version or run."""
        tags = {
            "gate.passed": str(self.passed).lower(),
            "gate.reasons": " ".join(self.reasons)[:5000],
            "gate.champion_version": self.champion_version or "",
        }
        for key, value in (self.comparison or {}).items():
            if isinstance(value, (bool, int)):  # row counts and whether the champion's lineage was known
                tags[f"gate.rows.{key}"] = str(value).lower()
        for metric in _metrics_in_order(self.checks):
            checks = [c for c in self.checks if c.metric == metric]
            tags[f"gate.metric.{metric}.passed"] = str(all(c.passed for c in checks)).lower()
            if metric in self.candidate:
                tags[f"gate.metric.{metric}.candidate"] = _fmt(self.candidate[metric])
            if self.champion and metric in self.champion:
                tags[f"gate.metric.{metric}.champion"] = _fmt(self.champion[metric])
        blob = json.dumps(self.to_dict(), separators=(",", ":"))
        # The full decision rides along when it fits a registry tag (100,000 characters).
        if len(blob) <= 90_000:
            tags["gate.decision"] = blob
        return tags

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite numbers become None)."""
        return {
            "passed": self.passed,
            "checks": [{k: _jsonable(v) for k, v in asdict(c).items()} for c in self.checks],
            "candidate": {k: _jsonable(v) for k, v in self.candidate.items()},
            "champion": None if self.champion is None else {k: _jsonable(v) for k, v in self.champion.items()},
            "champion_version": self.champion_version,
            "comparison": None if self.comparison is None else dict(self.comparison),
            "reasons": self.reasons,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        """Inverse of `to_dict`."""
        try:
            return cls(
                passed=bool(data["passed"]),
                checks=[Check(**c) for c in data.get("checks", [])],
                candidate=dict(data.get("candidate") or {}),
                champion=None if data.get("champion") is None else dict(data["champion"]),
                champion_version=data.get("champion_version"),
                comparison=None if data.get("comparison") is None else dict(data["comparison"]),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"A stored gate decision is malformed ({exc}); re-run the gate step.") from None

    def to_markdown(self) -> str:
        """A human report: verdict, table of checks, candidate vs champion with deltas."""
        verdict = "PASSED" if self.passed else "FAILED"
        if self.champion is None:
            against = "No champion yet: the candidate is judged on absolute thresholds alone."
        else:
            against = f"Candidate compared with champion version {self.champion_version or '?'}."
        rows = self.compared_on()
        if rows:
            against += f" Scored on {rows}."
        lines = [f"# Quality gate: {verdict}", "", against, ""]
        lines += [f"- {r}" for r in self.reasons] + [""]
        if self.checks:
            lines += ["## Checks", "", "| metric | check | required | actual | result |", "|---|---|---|---|---|"]
            for c in self.checks:
                result = "pass" if c.passed else "**FAIL**"
                lines.append(f"| {c.metric} | {c.kind} | {_fmt(c.required)} | {_fmt(c.actual)} | {result} |")
            lines.append("")
        names = sorted(set(self.candidate) | set(self.champion or {}))
        if names:
            lines += ["## Metrics", "", "| metric | candidate | champion | delta |", "|---|---|---|---|"]
            for name in names:
                cand = self.candidate.get(name)
                champ = (self.champion or {}).get(name)
                delta = cand - champ if is_finite_number(cand) and is_finite_number(champ) else None
                sign = "+" if delta is not None and delta >= 0 else ""
                lines.append(
                    f"| {name} | {_fmt(cand)} | {_fmt(champ)} | {sign + _fmt(delta) if delta is not None else ''} |"
                )
            lines.append("")
        return "\n".join(lines)


def parse_gate(section: dict | list | None) -> list[Threshold]:
    """Thresholds from a pipeline spec's `gate:` section (mapping or list with `metric` keys)."""
    if section is None:
        return []
    if isinstance(section, dict):
        items = list(section.items())
    elif isinstance(section, list):
        items = []
        for i, entry in enumerate(section):
            if not isinstance(entry, dict) or "metric" not in entry:
                raise ConfigError(
                    f"gate entry {i} must be a mapping with a 'metric' key, like {{metric: accuracy, threshold: 0.9}}."
                )
            rest = {k: v for k, v in entry.items() if k != "metric"}
            items.append((entry["metric"], rest))
    else:
        raise ConfigError(
            f"The gate section must be a mapping of metric names to criteria, not {type(section).__name__}."
        )
    seen: set[str] = set()
    thresholds = []
    for metric, criteria in items:
        if not isinstance(metric, str) or not _METRIC_NAME.match(metric):
            raise ConfigError(
                f"gate metric name {metric!r} is invalid: use letters, digits, '_', '.', '-', '/' or spaces."
            )
        if metric in seen:
            raise ConfigError(f"gate metric '{metric}' is listed twice; keep one entry.")
        seen.add(metric)
        thresholds.append(_parse_one(metric, criteria))
    return thresholds


def _parse_one(metric: str, criteria: Any) -> Threshold:
    if _is_number(criteria):
        # `accuracy: 0.9` is shorthand for a bare threshold.
        criteria = {"threshold": criteria}
    if not isinstance(criteria, dict):
        raise ConfigError(
            f"gate metric '{metric}' needs a mapping of criteria ({', '.join(_KEYS)}), not {type(criteria).__name__}."
        )
    unknown = [k for k in criteria if k not in _KEYS]
    if unknown:
        raise ConfigError(f"gate metric '{metric}' has unknown key {unknown[0]!r}; valid keys are {', '.join(_KEYS)}.")
    values: dict[str, Any] = {}
    for key in _CRITERIA:
        value = criteria.get(key)
        if value is None:
            continue
        if not _is_number(value) or not math.isfinite(value):
            raise ConfigError(f"gate metric '{metric}': {key} must be a finite number, not {value!r}.")
        values[key] = float(value)
    if not values:
        raise ConfigError(f"gate metric '{metric}' sets no criterion; give at least one of {', '.join(_CRITERIA)}.")
    gib = criteria.get("greater_is_better")
    if gib is None:
        gib = not lower_is_better_default(metric)
    elif not isinstance(gib, bool):
        raise ConfigError(f"gate metric '{metric}': greater_is_better must be true or false, not {gib!r}.")
    return Threshold(metric=metric, greater_is_better=gib, **values)


def min_compared_rows(test_rows: int) -> int:
    """The fewest rows a comparison may rest on: MIN_COMPARED_ROWS, or half the test split if smaller."""
    return max(1, min(MIN_COMPARED_ROWS, int(test_rows) // 2))


def evaluate_gate(
    thresholds: list[Threshold],
    candidate_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None = None,
    champion_version: str | None = None,
    comparison: dict[str, Any] | None = None,
) -> GateDecision:
    """Judge candidate metrics against thresholds and, when given, the champion's metrics.

    `comparison` describes the rows both metric sets were computed on (see `GateDecision.comparison`;
    aidevops_ext/evaluation.py's `compare` writes it). When rows were left out for overlap and fewer
    than `min_compared_rows` remain, the gate refuses with one sentence instead of judging.
    """
    candidate = {k: float(v) for k, v in candidate_metrics.items() if _is_number(v)}
    champion = None if champion_metrics is None else {k: float(v) for k, v in champion_metrics.items() if _is_number(v)}
    comparison = None if comparison is None else dict(comparison)
    refusal = _refusal(comparison, champion_version, champion is not None)
    if refusal is not None:
        checks = [refusal]
    else:
        checks = []
        for t in thresholds:
            checks.extend(_check_metric(t, candidate, champion, champion_version))
    return GateDecision(
        passed=all(c.passed for c in checks),
        checks=checks,
        candidate=candidate,
        champion=champion,
        champion_version=champion_version,
        comparison=comparison,
    )


def _refusal(comparison: dict[str, Any] | None, version: str | None, has_champion: bool) -> Check | None:
    """A failing 'rows' check when overlap left too few rows for a fair comparison, else None."""
    if not comparison:
        return None
    try:
        test = int(comparison["test_rows"])
        compared = int(comparison["compared_rows"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "The gate's comparison needs integer test_rows and compared_rows; pass what evaluation.compare returns."
        ) from None
    if compared >= test:  # nothing left out: the test split as it is
        return None
    need = min_compared_rows(test)
    if compared >= need:
        return None
    who = "the candidate"
    if has_champion:
        who = f"both the candidate and {'champion v' + str(version) if version else 'the champion'}"
    return Check(
        "rows",
        "overlap",
        float(need),
        float(compared),
        False,
        f"Refused: only {compared} of {test} test rows are unseen by {who} "
        f"(at least {need} needed for a fair comparison), so add rows or raise test_fraction.",
    )


def _check_metric(
    t: Threshold, candidate: dict[str, float], champion: dict[str, float] | None, version: str | None
) -> list[Check]:
    value = candidate.get(t.metric)
    if value is None or math.isnan(value):
        what = "has no metric" if value is None else "has a NaN value for"
        return [
            Check(
                t.metric, "missing", None, value, False, f"The candidate {what} '{t.metric}', which the gate requires."
            )
        ]
    checks = []
    better = "higher" if t.greater_is_better else "lower"
    if t.threshold is not None:
        ok = _at_least(value, t.threshold) if t.greater_is_better else _at_least(t.threshold, value)
        op = (">=" if t.greater_is_better else "<=") if ok else ("<" if t.greater_is_better else ">")
        verdict = "meets" if ok else "misses"
        checks.append(
            Check(
                t.metric,
                "threshold",
                t.threshold,
                value,
                ok,
                f"{t.metric} {_fmt(value)} {op} {_fmt(t.threshold)}: {verdict} the threshold ({better} is better).",
            )
        )
    if champion is None or (t.min_absolute_change is None and t.min_relative_change is None):
        return checks
    who = f"champion v{version}" if version else "the champion"
    base = champion.get(t.metric)
    if base is None or math.isnan(base):
        for kind, req in (("absolute_change", t.min_absolute_change), ("relative_change", t.min_relative_change)):
            if req is not None:
                checks.append(
                    Check(
                        t.metric,
                        kind,
                        req,
                        None,
                        True,
                        f"{who[0].upper() + who[1:]} has no '{t.metric}', so the {kind.replace('_', ' ')} check is skipped.",
                    )
                )
        return checks
    gain = value - base if t.greater_is_better else base - value
    if t.min_absolute_change is not None:
        ok = _at_least(gain, t.min_absolute_change)
        checks.append(
            Check(
                t.metric,
                "absolute_change",
                t.min_absolute_change,
                gain,
                ok,
                f"{t.metric} {_fmt(value)} vs {who} {_fmt(base)}: {_change_words(gain, t.min_absolute_change, ok, pct=False, lower=not t.greater_is_better)}.",
            )
        )
    if t.min_relative_change is not None:
        if base == 0:
            rel = 0.0 if gain == 0 else math.copysign(math.inf, gain)
        else:
            rel = gain / abs(base)
        ok = _at_least(rel, t.min_relative_change)
        checks.append(
            Check(
                t.metric,
                "relative_change",
                t.min_relative_change,
                rel,
                ok,
                f"{t.metric} {_fmt(value)} vs {who} {_fmt(base)}: {_change_words(rel, t.min_relative_change, ok, pct=True, lower=not t.greater_is_better)}.",
            )
        )
    return checks


def _change_words(gain: float, required: float, ok: bool, *, pct: bool, lower: bool) -> str:
    show = (lambda x: f"{x * 100:+.4g}%") if pct else (lambda x: f"{x:+.6g}")
    verdict = "meets" if ok else "misses"
    note = " (a negative minimum is a tolerated loss)" if required < 0 else ""
    direction = " (lower is better)" if lower else ""
    return f"improvement {show(gain)}{direction} {verdict} the required minimum {show(required)}{note}"


def _at_least(a: float, b: float) -> bool:
    # Metrics arrive as floats; 0.9 - 0.905 must still meet -0.005.
    return a >= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.6g}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _metrics_in_order(checks: list[Check]) -> list[str]:
    return list(dict.fromkeys(c.metric for c in checks))
