"""Reviewing notebooks: output hygiene, nbdime diffs of two pipeline runs, and review reports of one run.

Nothing heavy is imported here; nbdime and MLflow load inside the functions that need them.
"""
