"""Small distribution functions the monitors need: Kolmogorov and chi-square tails, normal quantiles, Wilson.

Pure NumPy and the standard library, vectorized. SciPy has all of these, but importing scipy.special is
slow and the model server imports monitoring; tests check these against SciPy.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["chi2_sf", "kolmogorov_sf", "ks_2samp_pvalue", "normal_quantile", "wilson_interval"]

_erfc = np.frompyfunc(math.erfc, 1, 1)


def kolmogorov_sf(x: np.ndarray | float) -> np.ndarray:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) * D_n), elementwise."""
    x = np.asarray(x, dtype=np.float64)
    out = np.ones_like(x)
    k = np.arange(1, 12, dtype=np.float64)[:, None]
    big = x >= 1.0
    if big.any():  # alternating series, fast for large x
        xb = x[big][None, :]
        signs = np.where(k % 2 == 1, 1.0, -1.0)
        out[big] = 2.0 * (signs * np.exp(-2.0 * k * k * xb * xb)).sum(axis=0)
    small = (x > 0.04) & ~big  # below 0.04 the CDF underflows to 0: sf is 1
    if small.any():  # Jacobi-transformed series, fast for small x
        xs = x[small][None, :]
        cdf = math.sqrt(2 * math.pi) / xs[0] * np.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * xs * xs)).sum(axis=0)
        out[small] = 1.0 - cdf
    return np.clip(out, 0.0, 1.0)


def ks_2samp_pvalue(d: np.ndarray | float, n: np.ndarray | float, m: np.ndarray | float) -> np.ndarray:
    """Asymptotic two-sample KS p-value with Stephens' small-sample correction (as Numerical Recipes)."""
    d, n, m = (np.asarray(a, dtype=np.float64) for a in (d, n, m))
    en = np.sqrt(n * m / np.maximum(n + m, 1.0))
    return kolmogorov_sf((en + 0.12 + 0.11 / np.maximum(en, 1e-12)) * d)


def chi2_sf(x: np.ndarray | float, dof: np.ndarray | int) -> np.ndarray:
    """P(chi-square with integer dof > x), elementwise; dof 0 gives 1 (no test)."""
    x, dof = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(dof, dtype=np.int64))
    y = np.maximum(x, 0.0) / 2.0
    logy = np.log(np.where(y > 0, y, 1.0))
    odd = dof % 2 == 1
    # Q(k/2, y) = [erfc(sqrt y) if k odd] + sum_j exp(-y) y^(j+h) / Gamma(j+h+1), h = 1/2 for odd k, 0 for even
    out = np.where(odd, _erfc(np.sqrt(y)).astype(np.float64), 0.0)
    h = np.where(odd, 0.5, 0.0)
    n_terms = np.where(odd, (dof - 1) // 2, dof // 2)
    lgamma = np.frompyfunc(math.lgamma, 1, 1)
    for j in range(int(n_terms.max(initial=0))):
        use = j < n_terms
        a = j + h
        term = np.exp(-y + a * logy - np.asarray(lgamma(a + 1.0), dtype=np.float64))
        term = np.where((y == 0) & (a > 0), 0.0, term)
        out = out + np.where(use, term, 0.0)
    out = np.where(dof <= 0, 1.0, out)
    return np.clip(out, 0.0, 1.0)


def normal_quantile(p: float) -> float:
    """The standard normal quantile (inverse CDF) at p."""
    return NormalDist().inv_cdf(p)


def wilson_interval(
    k: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion k/n at the given two-sided confidence; n > 0."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    z = normal_quantile(0.5 + confidence / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
