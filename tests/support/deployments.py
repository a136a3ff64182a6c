"""A `deployments` row for the tests that read or render stored deployments without starting one."""

from __future__ import annotations

from aidevops_ext.deploy.store import Deployment


def deployment_row(name: str = "d", model: str = "m", **columns) -> Deployment:
    """`model`'s champion deployed as `name`, running, written at time 0; `columns` set any other column."""
    row = {"ref": f"{model}@champion", "state": "running", "created": 0.0, "updated": 0.0, **columns}
    return Deployment(name=name, model=model, **row)
