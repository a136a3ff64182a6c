"""benchmarks/trainer_profile.py: its copy of the engine's loop is the engine's loop, and its phase switches work.

The profile attributes the engine's epoch time to phases by running a copy of kernels.train_part
with phases switched off; that breakdown means something only while the copy trains exactly
like the engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from aidevops_ext.trainer import kernels
from aidevops_ext.trainer.mlp import _Net, _Trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def profile():
    spec = importlib.util.spec_from_file_location("trainer_profile", ROOT / "benchmarks" / "trainer_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _problem(n=1000, d=12, hidden=24, k=4, batch=64):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.integers(0, k, n).astype(np.intp)
    return X, y, np.eye(k, dtype=np.float32)[y], rng.permutation(n), (d, hidden, k), batch


def _trainer(sizes, batch, n):
    net = _Net(list(sizes), "relu", "softmax", np, np.float32)
    net.init(np.random.default_rng(0))
    return net, _Trainer(net, batch, "adam", 1e-3, 0.9, 0.0, exact_shift=False, engine=kernels, n_rows=n, parts=1)


def _run_copy(profile, tr, net, X, y, order, batch, phases):
    return profile.epoch_phases(
        X, y, order, tr.xs, tr.ys, tr.ls, net.params, tr.e_grads, tr.layout, tr.e_acts, tr.e_dacts, tr.e_z, tr.e_p,
        tr.e_work, batch, tr.chunk, tr.hyper, tr.m1, tr.m2, 0, tr.gemm, phases,
    )  # fmt: skip


def test_profile_copy_trains_bit_for_bit_like_the_engine(profile):
    X, y, Y, order, sizes, batch = _problem()
    net_a, tr_a = _trainer(sizes, batch, len(X))
    net_b, tr_b = _trainer(sizes, batch, len(X))
    loss_engine = tr_a.epoch(X, Y, order, y)
    loss_copy = _run_copy(profile, tr_b, net_b, X, y, order, batch, profile.ALL)
    assert loss_copy == loss_engine
    assert np.array_equal(net_b.params, net_a.params)


def test_profile_copy_without_the_update_leaves_the_weights_alone(profile):
    X, y, _, order, sizes, batch = _problem()
    net, tr = _trainer(sizes, batch, len(X))
    before = net.params.copy()
    loss = _run_copy(profile, tr, net, X, y, order, batch, profile.ALL & ~profile.UPDATE)
    assert np.array_equal(net.params, before)
    assert loss > 0  # the forward pass and the loss still ran
