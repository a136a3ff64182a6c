"""A deployment's monitor summary as the live monitor stores it and `aidevops monitor` renders it, for the
tests of that rendering: only the parts a test sets."""

from __future__ import annotations


def numeric_drift(
    name: str, psi: float, ks_statistic: float, ks_pvalue: float, wasserstein_std: float, drifted: bool = False
) -> dict:
    """One numeric feature's drift figures."""
    feature = {
        "name": name,
        "kind": "numeric",
        "psi": psi,
        "ks_statistic": ks_statistic,
        "ks_pvalue": ks_pvalue,
        "wasserstein_std": wasserstein_std,
    }
    return {**feature, "drifted": True} if drifted else feature


def drift_summary(deployment: str, model: str, features: list[dict], **more) -> dict:
    """The summary of version 1 of `model` served as `deployment`, whose drift section holds `features` (those
    marked drifted listed as such), with `more` top-level parts (alerts...)."""
    drifted = [f["name"] for f in features if f.get("drifted")]
    drift = {"status": "ok", "drifted": drifted, "features": features}
    return {"deployment": deployment, "model": model, "version": "1", "drift": drift, **more}
