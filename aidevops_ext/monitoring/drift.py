"""Drift of a window of live rows (and of predictions) against the reference profile stored with the model.

Per numeric feature, all features at once: PSI on the profile's quantile bins (bands 0.1 / 0.25) with
a chi-square test on the same bins, the two-sample Kolmogorov-Smirnov statistic and p-value, the
Wasserstein-1 distance over the reference std, the mean shift in reference-std units, and the change
in missing rate (NaN/inf) with a two-proportion test.

Sample-size awareness. A p-value alone says "detectable", not "large": at a million rows KS flags
a shift of a hundredth of a std, at fifty rows it misses half a std. So a feature is flagged as
drifted only when the change is both *material* (PSI at least the lower band, or Wasserstein at
least `wasserstein_threshold` reference stds) and *significant* (KS or chi-square p < `alpha`);
both numbers are reported side by side. Windows with fewer than `min_rows` rows (or present values)
get status "insufficient data" and no statistics rather than a guess.

The reference CDF. A profile holds the reference's 0th..100th percentiles (older profiles: only the
bin edges); the reference CDF is the piecewise-linear curve through them, within ~1 percentile of the
reference's empirical CDF. KS p-values count the reference as a sample of its own size (two-sample
KS), since it is one.

Category features (profiles from frameprofile.build_frame_profile, `kind: "category"`): PSI and a
chi-square test over the profile's categories plus one bucket for every other value (the reference's
rarer categories and categories it never saw), the change in missing rate as for numbers, and the
unseen-category rate: the share of present live values outside the profile's categories, beside the
rate the reference leads one to expect there (its left-out rare categories plus the Good-Turing
estimate of new ones). A category feature is drifted when PSI is material and the chi-square test
significant, or when its missing rate moved. Each entry carries `kind` ("numeric" or "category") and,
for categories, the top categories' reference and live shares (`top_categories`).

Speed (benchmarks/monitoring.py measures it): the window's features are
sorted once, as contiguous rows, in threads (NumPy's sort releases the GIL); every statistic then reads
the sorted rows: bin counts by bisection at a few edges, KS at up to 4,096 order statistics per
feature (exact for windows up to that size; beyond it within 1/4,096 of the exact statistic, which is
far below the reference's own resolution), Wasserstein on a 4,096-point quantile grid (within
range/4,096 of the exact integral).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypedDict

import numpy as np
from typing_extensions import Unpack

from aidevops_ext.errors import ConfigError, DataError

from .defaults import (  # noqa: F401 - re-exported: callers import the defaults from here
    DEFAULT_ALPHA,
    DEFAULT_MIN_ROWS,
    DEFAULT_MISSING_THRESHOLD,
    DEFAULT_PSI_BANDS,
    DEFAULT_WASSERSTEIN_THRESHOLD,
)
from .profile import _as_float_matrix, _finite_ranges, _moments, _search_rows, category_labels, profile_from_dict
from .stats import chi2_sf, ks_2samp_pvalue

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_ROWS",
    "DEFAULT_MISSING_THRESHOLD",
    "DEFAULT_PSI_BANDS",
    "DEFAULT_WASSERSTEIN_THRESHOLD",
    "DriftReport",
    "FeatureDrift",
    "PredictionDrift",
    "feature_drift",
    "prediction_drift",
    "psi_band",
]


OK, INSUFFICIENT, NO_REFERENCE = "ok", "insufficient data", "no reference"
_GRID = 4096  # order statistics per feature read for KS and Wasserstein
_PARALLEL_MIN = 1 << 20  # elements below which threads cost more than they save
_TILE_ROWS = 4096  # rows per tile of the transposing copy
_FRAME_BLOCK_BYTES = 256 * 1024 * 1024  # float64 numeric columns of a DataFrame window taken at a time
TOP_CATEGORIES = 10  # categories listed per category feature in a report
UNSEEN = "(other)"  # the bucket of values outside the profile's categories


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature; statistics are None unless status is "ok"."""

    name: str
    status: str  # "ok" | "insufficient data" | "no reference"
    n: int  # rows in the window
    n_present: int  # finite values among them
    psi: float | None = None
    psi_band: str | None = None  # "none" | "moderate" | "major"
    chi2_pvalue: float | None = None  # chi-square test of homogeneity on the PSI bins
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None  # in the feature's units
    wasserstein_std: float | None = None  # over the reference std: the effect size
    mean_shift_std: float | None = None  # (window mean - reference mean) / reference std
    std_ratio: float | None = None  # window std / reference std
    missing_rate: float | None = None
    missing_rate_ref: float | None = None
    missing_change: float | None = None
    missing_pvalue: float | None = None
    drifted: bool = False
    reasons: tuple[str, ...] = ()  # what made it drifted: "psi", "wasserstein", "missing"
    kind: str = "numeric"  # "numeric" | "category"
    unseen_rate: float | None = None  # categories: share of present live values outside the profile's categories
    unseen_rate_ref: float | None = None  # what the reference leads one to expect there
    top_categories: tuple = ()  # categories: ({"category", "reference", "live"} shares of present values), top first

    def to_dict(self) -> dict:
        """JSON-able dict."""
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["top_categories"] = [dict(c) for c in self.top_categories]
        return d


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of one window against a profile."""

    n_rows: int
    min_rows: int
    status: str  # "ok" | "insufficient data"
    features: tuple[FeatureDrift, ...]
    settings: dict = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        """Names of the features flagged as drifted."""
        return [f.name for f in self.features if f.drifted]

    def metric(self, name: str) -> dict[str, Any]:
        """One statistic for every feature, by feature name (None where not computed)."""
        if name not in FeatureDrift.__dataclass_fields__:
            raise KeyError(f"{name!r} is not a feature drift field")
        return {f.name: getattr(f, name) for f in self.features}

    def feature(self, name: str) -> FeatureDrift:
        """The drift of the named feature."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature named {name!r} in this report")

    def to_dict(self) -> dict:
        """JSON-able dict."""
        counts = {"n_rows": self.n_rows, "min_rows": self.min_rows, "status": self.status, "drifted": self.drifted}
        return {**counts, "settings": dict(self.settings), "features": [f.to_dict() for f in self.features]}


@dataclass(frozen=True)
class PredictionDrift:
    """Drift of the prediction distribution: classes by chi-square, numbers as a numeric feature."""

    task: str  # "classification" | "regression"
    status: str
    n: int
    psi: float | None = None
    psi_band: str | None = None
    test: str = ""  # "chi2" (classes) | "ks" (numbers)
    statistic: float | None = None
    pvalue: float | None = None
    effect_size: float | None = None  # Cramer's V (classes) | Wasserstein / reference std (numbers)
    drifted: bool = False
    detail: dict = field(default_factory=dict)  # class frequencies, or the numeric FeatureDrift fields

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return asdict(self)


# --------------------------------------------------------------------------- options


def psi_band(psi: float | None, bands: Sequence[float] = DEFAULT_PSI_BANDS) -> str | None:
    """The PSI band: "none" below the lower band, "moderate" between, "major" at or above the upper one."""
    if psi is None:
        return None
    return "none" if psi < bands[0] else ("moderate" if psi < bands[1] else "major")


@dataclass(frozen=True)
class _Options:
    min_rows: int
    psi_bands: tuple[float, float]
    alpha: float
    wasserstein_threshold: float
    missing_threshold: float

    def as_dict(self) -> dict:
        return {**asdict(self), "psi_bands": list(self.psi_bands)}


class DriftArgs(TypedDict, total=False):
    """The settings feature_drift and prediction_drift share (their defaults are _options'): rows a window needs,
    PSI's (moderate, major) bands, the test level, and the effect size (Wasserstein over std) that counts."""

    min_rows: int
    psi_bands: Sequence[float]
    alpha: float
    wasserstein_threshold: float


def _options(
    *,
    min_rows: Any = DEFAULT_MIN_ROWS,
    psi_bands: Any = DEFAULT_PSI_BANDS,
    alpha: Any = DEFAULT_ALPHA,
    wasserstein_threshold: Any = DEFAULT_WASSERSTEIN_THRESHOLD,
    missing_threshold: Any = DEFAULT_MISSING_THRESHOLD,
) -> _Options:
    """The settings checked, or ConfigError naming the one that is wrong."""

    def number(name: str, v: Any, lo: float, hi: float) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not lo < v < hi:
            raise ConfigError(f"{name} must be a number in ({lo:g}, {hi:g}), got {v!r}.")
        return float(v)

    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise ConfigError(f"min_rows must be a positive integer, got {min_rows!r}.")
    try:
        b0, b1 = (number("psi_bands", b, 0, math.inf) for b in psi_bands)
    except (TypeError, ValueError):
        raise ConfigError(f"psi_bands must be two numbers (moderate, major), got {psi_bands!r}.") from None
    if not b0 < b1:
        raise ConfigError(f"psi_bands must increase (moderate < major), got {psi_bands!r}.")
    return _Options(
        int(min_rows),
        (b0, b1),
        number("alpha", alpha, 0, 1),
        number("wasserstein_threshold", wasserstein_threshold, 0, math.inf),
        number("missing_threshold", missing_threshold, 0, 1),
    )


# --------------------------------------------------------------------------- reference side


@dataclass
class _Reference:
    """Profile summaries as arrays: one row per feature (NaN rows where a feature has no reference)."""

    has: np.ndarray  # bool (F,)
    edges: np.ndarray  # (F, B+1)
    counts: np.ndarray  # (F, B)
    knots: np.ndarray  # (F, K+1) quantiles at levels 0, 1/K, ..., 1
    mean: np.ndarray
    std: np.ndarray
    n_present: np.ndarray  # finite reference values per feature
    n_rows: int
    missing_rate: np.ndarray


def _reference(summaries: Sequence[dict], n_bins: int, n_rows: int) -> _Reference:
    F = len(summaries)
    has = np.array([len(s.get("bin_edges") or []) == n_bins + 1 for s in summaries], dtype=bool)
    qlens = {len(s.get("quantiles") or []) for s, h in zip(summaries, has) if h}
    use_q = len(qlens) == 1 and min(qlens) >= 2 and all(s.get("quantiles") for s, h in zip(summaries, has) if h)
    n_knots = qlens.pop() if use_q else n_bins + 1  # profiles without percentiles fall back to the bin edges
    edges = np.full((F, n_bins + 1), np.nan)
    counts = np.zeros((F, n_bins))
    knots = np.full((F, n_knots), np.nan)
    mean, std = np.full(F, np.nan), np.full(F, np.nan)
    for j, s in enumerate(summaries):
        if has[j]:
            edges[j] = s["bin_edges"]
            counts[j] = s["counts"]
            knots[j] = s["quantiles"] if use_q else s["bin_edges"]
            mean[j], std[j] = s["mean"], s["std"]
    missing = np.array([float(s.get("missing_rate") or 0.0) for s in summaries])
    return _Reference(has, edges, counts, knots, mean, std, counts.sum(axis=1), int(n_rows), missing)


# --------------------------------------------------------------------------- window side


@dataclass
class _Window:
    S: np.ndarray  # (F, n) each feature sorted, finite values in S[j, lo[j]:hi[j]]
    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _sorted_window(A: np.ndarray) -> _Window:
    """Sort each feature once (threads over blocks of features) and take its moments while it is hot."""
    n, F = A.shape
    S = np.empty((F, n), dtype=A.dtype)
    lo, hi = np.zeros(F, np.int64), np.zeros(F, np.int64)
    mean, std = np.full(F, np.nan), np.full(F, np.nan)

    def work(a: int, b: int) -> None:
        block = S[a:b]
        # transpose in cache-sized tiles (a plain strided copy reads every row once per feature) into
        # contiguous rows, which NumPy's SIMD sort is fastest on
        if A.flags.f_contiguous:  # features are already contiguous columns (a DataFrame window): one copy
            np.copyto(block, A[:, a:b].T)
        else:
            for r in range(0, n, _TILE_ROWS):
                np.copyto(block[:, r : r + _TILE_ROWS], A[r : r + _TILE_ROWS, a:b].T)
        block.sort(axis=1)
        lo[a:b], hi[a:b] = _finite_ranges(block)
        mean[a:b], std[a:b] = _moments(block, lo[a:b], hi[a:b])

    threads = min(os.cpu_count() or 1, F) if A.size >= _PARALLEL_MIN else 1
    if threads <= 1:
        work(0, F)
    else:
        cuts = np.linspace(0, F, min(F, 2 * threads) + 1).astype(int)  # two blocks a thread evens out stragglers
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, cuts[:-1], cuts[1:]))
    return _Window(S, lo, hi, mean, std)


def _cdf_at(knots: np.ndarray, x: np.ndarray, rows: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """Piecewise-linear reference CDF through the knots at x[k, i] (feature rows[i]): right-continuous
    for side="right", its left limit for side="left" (they differ only at repeated knots: point masses)."""
    K1 = knots.shape[1]
    # one np.searchsorted per feature: with ~100 knots and up to _GRID points each it is far cheaper than an
    # all-features bisection, which gathers over every point each round
    j = np.empty(x.shape, dtype=np.int64)
    xt = np.ascontiguousarray(x.T)
    for i, r in enumerate(rows):
        j[:, i] = np.searchsorted(knots[r], xt[i], side=side)
    jj = np.clip(j, 1, K1 - 1)
    q0 = knots[rows, jj - 1]
    q1 = knots[rows, jj]
    # inside the knots q0 < q1 strictly (right: q0 <= x < q1; left: q0 < x <= q1)
    frac = np.clip((x - q0) / np.where(q1 > q0, q1 - q0, 1.0), 0.0, 1.0)
    G = (jj - 1 + frac) / (K1 - 1)
    return np.where(j == 0, 0.0, np.where(j == K1, 1.0, G))


def _ks(win: _Window, ref: _Reference, idx: np.ndarray) -> np.ndarray:
    """sup |F_window - G_reference| for the features idx, from up to _GRID order statistics each."""
    lo, m = win.lo[idx], (win.hi - win.lo)[idx]
    T = int(min(_GRID, m.max()))
    t = np.arange(T)[:, None]
    # block t of each feature's sorted values: D+ peaks at a block's end, D- at its start
    starts = (t * m) // T
    ends = np.maximum(((t + 1) * m) // T - 1, starts)
    x_end = win.S[idx, lo + ends].astype(np.float64)
    x_start = win.S[idx, lo + starts].astype(np.float64)
    d_plus = (ends + 1) / m - _cdf_at(ref.knots, x_end, idx, "right")
    d_minus = _cdf_at(ref.knots, x_start, idx, "left") - starts / m
    return np.maximum(np.maximum(d_plus.max(axis=0), d_minus.max(axis=0)), 0.0)


def _wasserstein(win: _Window, ref: _Reference, idx: np.ndarray) -> np.ndarray:
    """Integral over u of |Q_window(u) - Q_reference(u)|, midpoint rule on _GRID levels (tails: see below)."""
    lo, m = win.lo[idx], (win.hi - win.lo)[idx]
    u = (np.arange(_GRID) + 0.5) / _GRID
    x = win.S[idx, lo + np.minimum((u[:, None] * m).astype(np.int64), m - 1)].astype(np.float64)
    K = ref.knots.shape[1] - 1
    k = np.minimum((u * K).astype(np.int64), K - 1)
    frac = (u * K - k)[:, None]
    kn = ref.knots[idx]  # (F', K+1)
    q0, q1 = kn[:, k].T, kn[:, k + 1].T
    gap = np.abs(x - (q0 + frac * (q1 - q0)))
    # The outermost segments run from the 1st percentile to the minimum (99th to the maximum): a straight
    # line there would put reference mass far out in a long tail that is really a few extreme rows, and
    # bias W1 upwards (~0.04 std for a lognormal). All the profile knows is that the reference lies
    # within the segment, so count only how far window values fall outside it: a lower bound there.
    tail = (k == 0) | (k == K - 1)
    gap[tail] = np.maximum(q0[tail] - x[tail], 0.0) + np.maximum(x[tail] - q1[tail], 0.0)
    return np.ascontiguousarray(gap.T).mean(axis=1)  # row-wise: the same sums whatever the number of features


def _bin_counts(win: _Window, ref: _Reference, idx: np.ndarray) -> np.ndarray:
    """Window counts in the reference bins (the profile's bin rule: out-of-range values go to the end bins)."""
    inner = _search_rows(win.S, ref.edges[idx, 1:-1].T, win.lo[idx], win.hi[idx], "left", rows=idx)
    bounds = np.concatenate([win.lo[idx][None, :], inner, win.hi[idx][None, :]])
    return np.diff(bounds, axis=0).T.astype(np.float64)


def _psi_and_chi2(wc: np.ndarray, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSI and chi-square homogeneity p-value of window counts wc against reference counts rc, row-wise.

    A zero count is read as half a count, so PSI stays finite and scales with the sample; bins empty
    on both sides (repeated edges of a discrete column) are left out of both.
    """
    m, N = wc.sum(axis=1, keepdims=True), rc.sum(axis=1, keepdims=True)
    used = (wc > 0) | (rc > 0)
    wp = np.where(wc > 0, wc, 0.5) / np.maximum(m, 1)
    rp = np.where(rc > 0, rc, 0.5) / np.maximum(N, 1)
    psi = np.where(used, (wp - rp) * np.log(wp / rp), 0.0).sum(axis=1)
    tot = wc + rc
    ew, er = m * tot / (m + N), N * tot / (m + N)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(used, (wc - ew) ** 2 / ew + (rc - er) ** 2 / er, 0.0).sum(axis=1)
    return psi, chi2_sf(chi2, used.sum(axis=1) - 1)


def _missing_test(k_w: np.ndarray, n_w: int, k_r: np.ndarray, n_r: int) -> np.ndarray:
    """Two-proportion z-test p-value for a change in the missing rate."""
    pooled = (k_w + k_r) / max(n_w + n_r, 1)
    se2 = pooled * (1 - pooled) * (1 / max(n_w, 1) + 1 / max(n_r, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = np.where(se2 > 0, (k_w / max(n_w, 1) - k_r / max(n_r, 1)) ** 2 / se2, 0.0)
    return chi2_sf(z2, 1)


# --------------------------------------------------------------------------- numeric core


def _numeric_drift(A: np.ndarray, names: Sequence[str], ref: _Reference, opt: _Options) -> list[FeatureDrift]:
    n, F = A.shape
    win = _sorted_window(A)
    m = win.hi - win.lo
    miss_w = (n - m) / n if n else np.zeros(F)
    miss_p = _missing_test(n - m, n, ref.missing_rate * ref.n_rows, ref.n_rows)
    enough = n >= opt.min_rows
    ok = ref.has & (m >= opt.min_rows) & enough
    idx = np.flatnonzero(ok)
    stats: dict[str, np.ndarray] = {}
    if len(idx):
        psi, chi2_p = _psi_and_chi2(_bin_counts(win, ref, idx), ref.counts[idx])
        ks = _ks(win, ref, idx)
        ks_p = ks_2samp_pvalue(ks, m[idx], ref.n_present[idx])
        w1 = _wasserstein(win, ref, idx)
        sd = ref.std[idx]
        pos = sd > 0
        safe = np.where(pos, sd, 1.0)
        w_std = np.where(pos, w1 / safe, np.nan)  # a constant reference has no scale: None, judged on W1 > 0
        material_w = np.where(pos, w_std >= opt.wasserstein_threshold, w1 > 0)
        significant = (ks_p < opt.alpha) | (chi2_p < opt.alpha)
        stats = {
            "psi": psi,
            "chi2_pvalue": chi2_p,
            "ks_statistic": ks,
            "ks_pvalue": ks_p,
            "wasserstein": w1,
            "wasserstein_std": w_std,
            "mean_shift_std": np.where(pos, (win.mean[idx] - ref.mean[idx]) / safe, np.nan),
            "std_ratio": np.where(pos, win.std[idx] / safe, np.nan),
            "_psi_flag": (psi >= opt.psi_bands[0]) & significant,
            "_w_flag": material_w & significant,
        }
    row_of = {int(j): r for r, j in enumerate(idx)}
    out = []
    for j in range(F):
        status = NO_REFERENCE if not ref.has[j] else (OK if ok[j] else INSUFFICIENT)
        change = float(miss_w[j] - ref.missing_rate[j])
        missing_flag = bool(enough and abs(change) >= opt.missing_threshold and miss_p[j] < opt.alpha)
        kw: dict[str, Any] = {}
        reasons = []
        if j in row_of:
            r = row_of[j]
            kw = {k: _num(v[r]) for k, v in stats.items() if not k.startswith("_")}
            kw["psi_band"] = psi_band(kw["psi"], opt.psi_bands)
            reasons += ["psi"] if stats["_psi_flag"][r] else []
            reasons += ["wasserstein"] if stats["_w_flag"][r] else []
        reasons += ["missing"] if missing_flag else []
        out.append(
            FeatureDrift(
                name=names[j],
                status=status,
                n=int(n),
                n_present=int(m[j]),
                missing_rate=float(miss_w[j]) if n else None,
                missing_rate_ref=float(ref.missing_rate[j]),
                missing_change=change if n else None,
                missing_pvalue=float(miss_p[j]) if enough else None,
                drifted=bool(reasons),
                reasons=tuple(reasons),
                **kw,
            )
        )
    return out


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _window_matrix(X: Any, names: list[str]) -> np.ndarray:
    columns = getattr(X, "columns", None)
    if columns is not None and np.ndim(getattr(X, "dtypes", 0)) == 1:  # a DataFrame: match columns by name
        by_name = {str(c): c for c in columns}
        lacking = [nm for nm in names if nm not in by_name]
        if lacking:
            raise DataError(f"the window lacks profiled columns {lacking[:10]}; send the model's feature columns.")
        X = X[[by_name[nm] for nm in names]]
    A = _as_float_matrix(X)
    if A.shape[1] != len(names):
        raise DataError(
            f"the window has {A.shape[1]} columns but the profile has {len(names)} features; pass the same columns."
        )
    return A


# --------------------------------------------------------------------------- public API


def feature_drift(
    X_window: Any,
    profile: dict,
    *,
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD,
    **settings: Unpack[DriftArgs],
) -> DriftReport:
    """Drift of every feature of a window of rows against the reference profile."""
    family = _options(missing_threshold=missing_threshold, **settings)
    prof = profile_from_dict(profile)
    feats = prof["features"]
    names = [f["name"] for f in feats]
    # `alpha` bounds the chance that a window of in-distribution traffic shows ANY feature drifted: each of the
    # F features is tested at alpha / F (Bonferroni). Tested at alpha each, 64 features would flag about three
    # by chance in every window, and a drift list that is never empty teaches users to ignore it.
    opt = replace(family, alpha=family.alpha / max(1, len(names)))
    if not any(f.get("kind") == "category" for f in feats) and not _is_frame(X_window):
        A = _window_matrix(X_window, names)
        ref = _reference(feats, prof["n_bins"], prof["n_rows"])
        features = _numeric_drift(A, names, ref, opt)
        n_rows = int(A.shape[0])
    else:
        features, n_rows = _frame_drift(X_window, prof, opt)
    status = OK if n_rows >= opt.min_rows else INSUFFICIENT
    return DriftReport(n_rows, opt.min_rows, status, tuple(features), family.as_dict())


def _is_frame(X: Any) -> bool:
    return getattr(X, "columns", None) is not None and np.ndim(getattr(X, "dtypes", 0)) == 1


def _frame_drift(frame: Any, prof: dict, opt: _Options) -> tuple[list[FeatureDrift], int]:
    """Numeric features a block of columns at a time (bounded memory), category features one by one."""
    import pandas as pd  # noqa: PLC0415 - only DataFrame windows need it; the .npz path stays pandas-free

    if not _is_frame(frame):
        raise DataError(
            "the profile has category features, so the window must be a DataFrame with named columns; "
            "pass the logged rows as a DataFrame."
        )
    feats = prof["features"]
    by_name = {str(c): c for c in frame.columns}
    lacking = [f["name"] for f in feats if f["name"] not in by_name]
    if lacking:
        raise DataError(f"the window lacks profiled columns {lacking[:10]}; send the model's feature columns.")
    n = int(len(frame))
    out: dict[str, FeatureDrift] = {}
    numeric = [f for f in feats if f.get("kind") != "category"]
    per_block = max(1, _FRAME_BLOCK_BYTES // max(1, 8 * n))
    for start in range(0, len(numeric), per_block):
        block = numeric[start : start + per_block]
        # column-major: each column is one contiguous copy here, and each feature one contiguous row of A.T
        # for the sort (a row-major A would take a strided write per column)
        A = np.empty((n, len(block)), dtype=np.float64, order="F")
        for i, f in enumerate(block):
            col = frame[by_name[f["name"]]]
            if getattr(col.dtype, "kind", "O") not in "biuf":  # live JSON may bring strings: they count as missing
                col = pd.to_numeric(col, errors="coerce")
            A[:, i] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        ref = _reference(block, prof["n_bins"], prof["n_rows"])
        for fd in _numeric_drift(A, [f["name"] for f in block], ref, opt):
            out[fd.name] = fd
    cats = [f for f in feats if f.get("kind") == "category"]
    threads = 2 if (os.cpu_count() or 1) > 1 and n * len(cats) >= _PARALLEL_MIN else 1
    with ThreadPoolExecutor(threads) as pool:  # pandas hashes Arrow strings without the GIL
        for fd in pool.map(lambda f: _category_drift(frame[by_name[f["name"]]], f, prof["n_rows"], opt), cats):
            out[fd.name] = fd
    return [out[f["name"]] for f in feats], n


def _category_drift(column: Any, ref: dict, n_ref: int, opt: _Options) -> FeatureDrift:
    """PSI + chi-square over the reference categories and one "(other)" bucket, missing and unseen rates."""
    from .frameprofile import factorize  # noqa: PLC0415 - pandas: only DataFrame windows need it

    cats = list(ref["categories"])
    K = len(cats)
    n = int(len(column))
    codes, uniques = factorize(column)
    index = {c: i for i, c in enumerate(cats)}
    # one lookup per distinct live value, then a gather: no Python work per row
    lut = np.array([index.get(label, K) for label in category_labels(uniques)] + [K + 1], dtype=np.int64)
    live = np.bincount(lut[codes], minlength=K + 2)  # code -1 (missing) reads lut[-1] = K + 1
    n_missing = int(live[K + 1])
    wc = live[: K + 1].astype(np.float64)
    rc = np.array(list(ref["counts"]) + [int(ref.get("other_count") or 0)], dtype=np.float64)
    m, m_ref = int(wc.sum()), float(rc.sum())
    miss_ref = float(ref.get("missing_rate") or 0.0)
    miss_w = n_missing / n if n else 0.0
    enough = n >= opt.min_rows
    miss_p = float(_missing_test(np.array([n_missing]), n, np.array([miss_ref * n_ref]), n_ref)[0])
    change = miss_w - miss_ref
    reasons: list[str] = []
    kw: dict[str, Any] = {}
    status = NO_REFERENCE if m_ref <= 0 else (OK if enough and m >= opt.min_rows else INSUFFICIENT)
    if status == OK:
        psi, p = _psi_and_chi2(wc[None, :], rc[None, :])
        kw = {"psi": _num(psi[0]), "chi2_pvalue": _num(p[0]), "psi_band": psi_band(_num(psi[0]), opt.psi_bands)}
        if psi[0] >= opt.psi_bands[0] and p[0] < opt.alpha:
            reasons.append("psi")
    if enough and abs(change) >= opt.missing_threshold and miss_p < opt.alpha:
        reasons.append("missing")
    share_w = wc / m if m else np.zeros(K + 1)
    share_r = rc / m_ref if m_ref else np.zeros(K + 1)
    top = np.argsort(-np.maximum(share_w[:K], share_r[:K]), kind="stable")[:TOP_CATEGORIES]
    listed = [{"category": cats[i], "reference": float(share_r[i]), "live": float(share_w[i])} for i in top]
    listed.append({"category": UNSEEN, "reference": float(share_r[K]), "live": float(share_w[K])})
    return FeatureDrift(
        name=ref["name"],
        status=status,
        n=n,
        n_present=m,
        missing_rate=float(miss_w) if n else None,
        missing_rate_ref=miss_ref,
        missing_change=float(change) if n else None,
        missing_pvalue=miss_p if enough else None,
        drifted=bool(reasons),
        reasons=tuple(reasons),
        kind="category",
        unseen_rate=float(share_w[K]) if m else None,
        unseen_rate_ref=float(min(1.0, share_r[K] + float(ref.get("unseen_rate") or 0.0))),
        top_categories=tuple(listed),
        **kw,
    )


def prediction_drift(predictions: Any, profile: dict, **settings: Unpack[DriftArgs]) -> PredictionDrift:
    """Drift of a window of predictions against the profile's prediction distribution."""
    opt = _options(**settings)
    prof = profile_from_dict(profile)
    ref = prof.get("predictions")
    if not isinstance(ref, dict) or ref.get("task") not in ("classification", "regression"):
        raise DataError(
            "the profile holds no prediction distribution; build it with build_profile(..., predictions=...)."
        )
    p = np.asarray(predictions)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1:
        raise DataError(f"predictions must be 1-D (one per row), got shape {p.shape}; pass predict()'s output.")
    if ref["task"] == "classification":
        return _class_drift(p, ref, opt)
    A = _as_float_matrix(p.reshape(-1, 1))
    r = _reference([ref], prof["n_bins"], int(ref.get("n") or 0))
    fd = _numeric_drift(A, ["prediction"], r, opt)[0]
    return PredictionDrift(
        task="regression",
        status=fd.status,
        n=fd.n,
        psi=fd.psi,
        psi_band=fd.psi_band,
        test="ks",
        statistic=fd.ks_statistic,
        pvalue=fd.ks_pvalue,
        effect_size=fd.wasserstein_std,
        drifted=fd.drifted,
        detail=fd.to_dict(),
    )


def _class_drift(p: np.ndarray, ref: dict, opt: _Options) -> PredictionDrift:
    classes = list(ref.get("classes") or [])
    rc = {c: int(k) for c, k in zip(classes, ref.get("counts") or [])}
    values, counts = np.unique(p, return_counts=True) if len(p) else (np.array([]), np.array([], dtype=int))
    wc = dict(zip(values.tolist(), counts.tolist()))  # tolist: numpy scalars -> the JSON types the profile holds
    new = [c for c in wc if c not in rc]
    order = classes + new
    n = int(len(p))
    detail = {
        "classes": order,
        "frequencies": [wc.get(c, 0) / n if n else 0.0 for c in order],
        "ref_frequencies": [rc.get(c, 0) / max(sum(rc.values()), 1) for c in order],
        "new_classes": new,
    }
    if n < opt.min_rows:
        return PredictionDrift("classification", INSUFFICIENT, n, test="chi2", detail=detail)
    if not rc:
        return PredictionDrift("classification", NO_REFERENCE, n, test="chi2", detail=detail)
    w = np.array([[wc.get(c, 0) for c in order]], dtype=np.float64)
    r = np.array([[rc.get(c, 0) for c in order]], dtype=np.float64)
    psi, pval = _psi_and_chi2(w, r)
    tot, N = w + r, r.sum()
    ew, er = n * tot / (n + N), N * tot / (n + N)
    chi2 = float(((w - ew) ** 2 / ew + (r - er) ** 2 / er).sum())
    cramers_v = math.sqrt(chi2 / (n + N))  # a 2 x C table: min(rows, cols) - 1 = 1
    drifted = bool(psi[0] >= opt.psi_bands[0] and pval[0] < opt.alpha)
    return PredictionDrift(
        task="classification",
        status=OK,
        n=n,
        psi=float(psi[0]),
        psi_band=psi_band(float(psi[0]), opt.psi_bands),
        test="chi2",
        statistic=chi2,
        pvalue=float(pval[0]),
        effect_size=cramers_v,
        drifted=drifted,
        detail=detail,
    )
