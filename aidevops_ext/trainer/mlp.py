"""Multi-layer perceptrons (and the training engine LogisticRegression shares), written once for NumPy or CuPy."""

from __future__ import annotations

import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ModelFileError
from .backend import get_backend
from .base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    check_choice,
    check_labels,
    check_number,
    check_targets,
    check_X,
    resolve_dtype,
)
from .callbacks import CallbackList
from .optim import OPTIMIZERS, SGD, Adam, make_optimizer

ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
PREDICT_CHUNK = 65536  # rows per forward pass at predict time: bounds memory for huge X
CHUNK_BYTES = 2 << 20  # compiled NumPy engine: shuffled rows of X gathered per chunk of batches
MIN_PART_ROWS = 64  # compiled engine: fewest batch rows per thread when a batch is split over threads
ENGINE_ENV_VAR = "AIDEVOPS_NUMBA"  # 0 / false / no / off: train on NumPy with the xp code only

logger = logging.getLogger("aidevops.trainer")
_engine_note: str | None = None  # why the compiled engine is off, logged once per process


def engine_parts(engine: ModuleType, batch_size: int, n_rows: int | None) -> int:
    """Threads the compiled engine splits each batch over (each running single-threaded BLAS on its rows).

    As many as BLAS would use threads (so the CPU budget is the one np.matmul takes), with at
    least MIN_PART_ROWS rows each, and only with enough batches to pay for starting threads.
    """
    if n_rows is None or n_rows < 4 * batch_size:
        return 1
    return max(1, min(engine.max_parts(), batch_size // MIN_PART_ROWS))


def load_engine() -> ModuleType | None:
    """The compiled NumPy training engine (the kernels module), or None to use the xp code.

    None when AIDEVOPS_NUMBA is 0 / false / no / off, when Numba is not installed, or when
    NumPy's BLAS gemm could not be found and checked. Imported here, at the first fit, never
    at package import: Numba is slow to import.
    """
    global _engine_note
    if os.environ.get(ENGINE_ENV_VAR, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from . import kernels  # noqa: PLC0415
    except ImportError as exc:
        note = f"numba is not importable ({exc}): the NumPy backend trains with plain array operations"
    else:
        if kernels.GEMM:
            return kernels
        note = "NumPy's BLAS gemm was not found: the NumPy backend trains with plain array operations"
    if note != _engine_note:
        logger.info(note)
        _engine_note = note
    return None


# ----------------------------------------------------------------------------------------------
# The network: dense layers whose weights live in one flat buffer
# ----------------------------------------------------------------------------------------------


class _Net:
    """Dense layers in one flat parameter buffer; layer i is a (fan_in + 1, fan_out) view whose last row is the bias.

    One flat buffer lets the optimizer update every parameter with a handful of array ops, and
    keeping the bias as an extra row lets the first layer fold it into its matrix product.
    """

    def __init__(self, sizes: list[int], activation: str, output: str, xp: ModuleType, dtype: type) -> None:
        self.sizes, self.activation, self.output, self.xp, self.dtype = sizes, activation, output, xp, dtype
        self.shapes = [(fan_in + 1, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
        self.params = xp.zeros(sum(a * b for a, b in self.shapes), dtype=dtype)
        self.layers = self.views(self.params)

    def views(self, flat: Any) -> list[Any]:
        """Split a flat buffer shaped like params into per-layer (fan_in + 1, fan_out) views."""
        out, start = [], 0
        for rows, cols in self.shapes:
            out.append(flat[start : start + rows * cols].reshape(rows, cols))
            start += rows * cols
        return out

    def init(self, rng: np.random.Generator) -> None:
        """Glorot-uniform weights and biases, drawn on the host so every backend starts identically."""
        host = np.empty(self.params.shape, dtype=self.dtype)
        factor = 2.0 if self.activation == "logistic" else 6.0  # scikit-learn's choice
        start = 0
        for rows, cols in self.shapes:
            bound = math.sqrt(factor / (rows - 1 + cols))
            host[start : start + rows * cols] = rng.uniform(-bound, bound, rows * cols)
            start += rows * cols
        self.params[...] = self.xp.asarray(host)

    def forward(self, X: Any) -> Any:
        """Output scores (logits, or values for regression) for a 2-D array X on this backend."""
        xp, a = self.xp, X
        last = len(self.layers) - 1
        for i, W in enumerate(self.layers):
            z = xp.matmul(a, W[:-1])
            xp.add(z, W[-1], out=z)
            if i < last:
                _activate(xp, self.activation, z)
            a = z
        return a


def _activate(xp: ModuleType, activation: str, a: Any) -> None:
    """Apply a hidden activation in place (the allocation-free training loop has its own)."""
    if activation == "relu":
        xp.maximum(a, 0, out=a)
    elif activation == "tanh":
        xp.tanh(a, out=a)
    elif activation == "logistic":
        _sigmoid(xp, a, a)


def _sigmoid(xp: ModuleType, z: Any, out: Any) -> Any:
    """Logistic function via tanh: never overflows, unlike 1 / (1 + exp(-z))."""
    xp.multiply(z, 0.5, out=out)
    xp.tanh(out, out=out)
    xp.multiply(out, 0.5, out=out)
    xp.add(out, 0.5, out=out)
    return out


# ----------------------------------------------------------------------------------------------
# The training engine: every per-batch array is allocated once
# ----------------------------------------------------------------------------------------------


class _Layer:
    """One layer's per-batch arrays and every view the step needs, built once (views cost time per batch too)."""

    def __init__(self, a_in: Any, W: Any, g: Any, out: Any, first: bool) -> None:
        self.a_in = a_in  # input activations (the ones-augmented X batch for the first layer)
        self.out = out  # pre-activation, then activation in place (logits for the output layer)
        if first:
            # The bias rides on the ones column of X: one product gives outputs, and one gives both gradients.
            self.W, self.bias = W, None
            self.a_in_T, self.gW, self.gb = a_in.T, g, None
        else:
            self.W, self.bias = W[:-1], W[-1]
            self.a_in_T, self.gW, self.gb = a_in.T, g[:-1], g[-1:]
        self.W_T = W[:-1].T  # for the delta sent back to the previous layer
        self.W_nobias, self.gW_nobias = W[:-1], g[:-1]  # the L2 penalty skips biases


class _Buffers:
    """Per-batch work arrays for one batch size (full batches, or views for the last partial batch)."""

    def __init__(self, full: _Buffers | None, xp: ModuleType, net: _Net, glayers: list[Any], n: int) -> None:
        dtype, k = net.dtype, net.sizes[-1]
        hidden = net.sizes[1:-1]
        if full is None:
            self.xb = xp.ones((n, net.sizes[0] + 1), dtype)  # the last column stays 1: the first bias
            self.yb = xp.empty((n, k), dtype)
            self.acts = [xp.empty((n, h), dtype) for h in hidden]
            self.dacts = [xp.empty((n, h), dtype) for h in hidden]
            self.tmps = [xp.empty((n, h), dtype) for h in hidden]  # ReLU mask / activation-derivative scratch
            self.z, self.p = xp.empty((n, k), dtype), xp.empty((n, k), dtype)
            self.c, self.s = xp.empty((n, 1), dtype), xp.empty((n, 1), dtype)
            self.ones = xp.ones((1, n), dtype)
        else:
            # Views of the full-size buffers: the last partial batch allocates nothing either.
            self.xb, self.yb = full.xb[:n], full.yb[:n]
            self.acts, self.dacts = [a[:n] for a in full.acts], [a[:n] for a in full.dacts]
            self.tmps = [a[:n] for a in full.tmps]
            self.z, self.p, self.c, self.s = full.z[:n], full.p[:n], full.c[:n], full.s[:n]
            self.ones = full.ones[:, :n]
        self.x = self.xb[:, :-1]  # rows are gathered into this view
        self.n, self.inv_n = n, 1.0 / n
        ins = [self.xb, *self.acts]
        outs = [*self.acts, self.z]
        self.layers = [_Layer(ins[i], W, glayers[i], outs[i], i == 0) for i, W in enumerate(net.layers)]
        # Per hidden layer: delta buffer, activation output, scratch, and the same three as same-width
        # integers for the bitwise ReLU (see _Trainer.step).
        itype = np.dtype(f"i{np.dtype(dtype).itemsize}")
        self.hidden = [
            (da, h, t, da.view(itype), h.view(itype), t.view(itype))
            for da, h, t in zip(self.dacts, self.acts, self.tmps)
        ]


class _Trainer:
    """Runs epochs of mini-batch training for a _Net with preallocated buffers and an in-place optimizer.

    Two implementations of one algorithm. The `xp` code below drives each batch from Python and
    runs on CuPy, or on NumPy when the compiled engine is unavailable; it is the reference. On
    NumPy with `engine` (load_engine(): Numba plus NumPy's own BLAS gemm), a whole
    epoch runs in one compiled call per thread: the same five matrix products per batch through
    the same BLAS, every elementwise stage fused into one pass, and each batch split by rows over
    `parts` threads (engine_parts(); see kernels.py). The parts sum their gradients before the
    update, so the result differs from one part only by float rounding.
    """

    def __init__(
        self,
        net: _Net,
        batch_size: int,
        optimizer_name: str,
        learning_rate: float,
        momentum: float,
        l2: float,
        exact_shift: bool,
        engine: Any = None,
        n_rows: int | None = None,
        parts: int | None = None,
    ) -> None:
        xp = net.xp
        self.net, self.xp, self.l2 = net, xp, float(l2)
        self.activation, self.output = net.activation, net.output
        self.sign_shift = 8 * np.dtype(net.dtype).itemsize - 1
        self.grads = xp.zeros_like(net.params)
        self.glayers = net.views(self.grads)
        self.optimizer = make_optimizer(optimizer_name, [net.params], learning_rate, momentum=momentum, xp=xp)
        self.grad_list = [self.grads]
        self.full = _Buffers(None, xp, net, self.glayers, batch_size)
        self.partial: dict[int, _Buffers] = {}
        k = net.sizes[-1]
        self.kones = xp.ones((k, 1), dtype=net.dtype)
        self.l2tmp = [xp.empty((r - 1, c), dtype=net.dtype) for r, c in net.shapes] if self.l2 else []
        # CuPy: a row max costs little and avoids a host sync per batch; NumPy: see _softmax_loss.
        self.exact_shift = exact_shift
        self.engine = engine if xp is np and engine is not None else None
        if self.engine is not None:
            self._init_engine(batch_size, n_rows, parts)

    def buffers(self, n: int) -> _Buffers:
        """Buffers for a batch of n rows (views of the full ones when n is smaller)."""
        if n == self.full.n:
            return self.full
        if n not in self.partial:
            self.partial[n] = _Buffers(self.full, self.xp, self.net, self.glayers, n)
        return self.partial[n]

    def epoch(self, X: Any, Y: Any, order: Any, labels: Any = None) -> Any:
        """One pass over X and targets Y in the given row order; returns the summed loss.

        labels: optional class indices with Y == one_hot(labels) (softmax outputs); the compiled
        engine then reads them instead of the rows of Y.
        """
        if self.engine is not None:
            return self._run_engine(X, Y, order, labels)
        batch, n, step = self.full.n, len(order), self.step
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            b = self.full if len(idx) == batch else self.buffers(len(idx))
            total = total + step(X, Y, idx, b)
        return total

    def step(self, X: Any, Y: Any, idx: Any, b: _Buffers, labels: Any = None) -> Any:
        """Forward, backward and optimizer update on rows idx; returns the batch's summed loss."""
        if self.engine is not None:
            if len(idx) != b.n or b.n > self.full.n:
                raise ValueError("step() needs the buffers for exactly len(idx) rows")
            return self._run_engine(X, Y, idx, labels)  # an "epoch" of one batch
        xp, act, sign_shift = self.xp, self.activation, self.sign_shift
        matmul = xp.matmul
        xp.take(X, idx, axis=0, out=b.x)
        xp.take(Y, idx, axis=0, out=b.yb)
        layers, hidden = b.layers, b.hidden

        # Forward.
        for i, L in enumerate(layers):
            h = L.out
            matmul(L.a_in, L.W, out=h)
            if L.bias is not None:
                xp.add(h, L.bias, out=h)
            if i < len(hidden):
                if act == "relu":
                    # Bitwise ReLU on the float's bits: mask = ~(z >> 31) is all ones where the sign bit is
                    # clear, so h & mask is relu(z), and the same mask gates the backward pass with one AND.
                    # Exact, and a third cheaper on NumPy than maximum + (h > 0) + multiply.
                    _, _, _, _, h_bits, mask = hidden[i]
                    xp.right_shift(h_bits, sign_shift, out=mask)
                    xp.invert(mask, out=mask)
                    xp.bitwise_and(h_bits, mask, out=h_bits)
                elif act == "tanh":
                    xp.tanh(h, out=h)
                elif act == "logistic":
                    _sigmoid(xp, h, h)
        loss = self._output(b)  # leaves dLoss/dz (mean over the batch) in b.p

        # Backward.
        dz = b.p
        for i in range(len(layers) - 1, -1, -1):
            L = layers[i]
            matmul(L.a_in_T, dz, out=L.gW)
            if L.gb is not None:
                matmul(b.ones, dz, out=L.gb)  # column sums as a product: faster than sum(axis=0)
            if self.l2:
                tmp = self.l2tmp[i]
                xp.multiply(L.W_nobias, self.l2, out=tmp)
                xp.add(L.gW_nobias, tmp, out=L.gW_nobias)
            if i:
                da, h, tmp, da_bits, _, mask = hidden[i - 1]
                matmul(dz, L.W_T, out=da)
                if act == "relu":
                    xp.bitwise_and(da_bits, mask, out=da_bits)  # zero where z <= 0 (mask from the forward pass)
                elif act == "tanh":
                    xp.multiply(h, h, out=tmp)
                    xp.subtract(1, tmp, out=tmp)
                    xp.multiply(da, tmp, out=da)
                elif act == "logistic":
                    xp.subtract(1, h, out=tmp)
                    xp.multiply(tmp, h, out=tmp)
                    xp.multiply(da, tmp, out=da)
                dz = da
        self.optimizer.step(self.grad_list)
        return loss

    # --- the compiled NumPy engine (kernels.py) ---------------------------------------------------
    def _compiled(self) -> ModuleType:
        if self.engine is None:  # callers check first; this keeps the type exact
            raise RuntimeError("the compiled engine is not loaded")
        return self.engine

    def _init_engine(self, batch_size: int, n_rows: int | None, parts: int | None) -> None:
        net, dtype = self.net, np.dtype(self.net.dtype)
        d, k, hidden = net.sizes[0], net.sizes[-1], net.sizes[1:-1]
        eng = self._compiled()
        self.act_code, self.out_code = eng.ACT_CODES[self.activation], eng.OUT_CODES[self.output]
        self.gemm = eng.GEMM[dtype.name]
        self.parts = parts = max(1, int(engine_parts(eng, batch_size, n_rows) if parts is None else parts))
        slot = -(-batch_size // parts)  # rows per part per batch, at most
        # Per layer: fan_in, fan_out, offset of its (fan_in + 1, fan_out) block in params, and
        # offset of its output in a part's hidden activation buffer.
        layout, off, act_off = [], 0, 0
        for rows, cols in net.shapes:
            layout.append((rows - 1, cols, off, act_off))
            off += rows * cols
            act_off += slot * cols
        self.layout = np.array(layout, dtype=np.int64)
        self.e_acts = np.empty((parts, slot * sum(hidden)), dtype)
        self.e_dacts = np.empty((parts, slot * sum(hidden)), dtype)
        self.e_z, self.e_p = np.empty((parts, slot, k), dtype), np.empty((parts, slot, k), dtype)
        self.e_work = np.empty((parts, (k + 3) * slot), dtype)  # softmax scratch: transposed logits + 3 rows
        # One gradient row per part (summed by the update); a single part writes self.grads itself.
        self.e_grads = self.grads.reshape(1, -1) if parts == 1 else np.zeros((parts, self.grads.size), dtype)
        # Shuffled rows are gathered a chunk of batches (~2 MiB of X) at a time: a long run of
        # independent loads hides memory latency far better than a 256-row gather between products.
        per_chunk = max(1, CHUNK_BYTES // (batch_size * d * dtype.itemsize))
        if n_rows is not None:
            per_chunk = min(per_chunk, -(-n_rows // batch_size))
        self.chunk = per_chunk * batch_size
        self.xs = np.empty((parts, per_chunk * slot, d), dtype)
        self.ys = np.empty((parts, per_chunk * slot, k), dtype)
        self.ls, self.no_labels = np.empty((parts, per_chunk * slot), np.intp), np.empty(0, np.intp)
        opt = self.optimizer
        state = opt.state()
        if isinstance(opt, Adam):
            self.opt_code, self.m1, self.m2 = 0, state["n"][0], state["u"][0]
            self.hyper = np.array([opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon])
        elif isinstance(opt, SGD):
            self.opt_code = 1
            self.m1, self.m2 = (state["w"][0] if state["w"] else np.empty(0, dtype)), np.empty(0, dtype)
            self.hyper = np.array([opt.learning_rate, opt.momentum, 0.0, 0.0])
        self.sync = np.zeros(3, np.int64)  # barrier state shared by the parts (see kernels.barrier)
        self.losses = np.zeros(parts)

    def _run_engine(self, X: Any, Y: Any, order: Any, labels: Any) -> float:
        eng, parts = self._compiled(), self.parts
        lab = self.no_labels
        if labels is not None and self.output == "softmax":
            lab = labels if labels.dtype == np.intp else labels.astype(np.intp)
        # The compiled code takes contiguous arrays (no copies when they already are).
        X, Y, order = np.ascontiguousarray(X), np.ascontiguousarray(Y), np.ascontiguousarray(order, dtype=np.intp)
        args = (
            X,
            Y,
            lab,
            order,
            self.xs,
            self.ys,
            self.ls,
            self.net.params,
            self.e_grads,
            self.layout,
            self.e_acts,
            self.e_dacts,
            self.e_z,
            self.e_p,
            self.e_work,
            self.act_code,
            self.out_code,
            self.full.n,
            self.chunk,
            self.l2,
            self.opt_code,
            self.hyper,
            self.m1,
            self.m2,
            self.optimizer.t,
            self.gemm,
            self.sync,
            eng.YIELD,
            self.losses,
        )
        if parts == 1:
            self.optimizer.t = eng.train_part(0, 1, *args)
            return float(self.losses[0])
        # Compile (or load) for these argument types here, so no thread can fail while others wait at a barrier.
        eng.train_part(0, parts, *args[:3], order[:0], *args[4:])
        self.sync[:] = 0
        workers: list[threading.Thread] = []
        with eng.single_threaded_blas():  # one single-threaded BLAS per part
            try:
                for q in range(1, parts):
                    workers.append(threading.Thread(target=eng.train_part, args=(q, parts, *args), daemon=True))
                    workers[-1].start()
                t = eng.train_part(0, parts, *args)
            except BaseException:
                self.sync[2] = 1  # releases any started part from its barrier
                raise
            finally:
                for w in workers:
                    if w.ident is not None:  # started
                        w.join()
        self.optimizer.t = t
        return float(self.losses.sum())

    def _output(self, b: _Buffers) -> Any:
        """Summed loss of the batch; writes the mean-loss gradient w.r.t. z into b.p."""
        xp, out = self.xp, self.output
        if out == "softmax":
            loss = self._softmax_loss(b)
            xp.subtract(b.p, b.yb, out=b.p)
        elif out == "logistic":
            # Binary cross-entropy on logits: softplus(z) - z*y, with logaddexp for stability.
            xp.logaddexp(0, b.z, out=b.c)
            loss = xp.vdot(b.ones, b.c) - xp.vdot(b.z, b.yb)
            _sigmoid(xp, b.z, b.p)
            xp.subtract(b.p, b.yb, out=b.p)
        else:
            xp.subtract(b.z, b.yb, out=b.p)
            loss = 0.5 * xp.vdot(b.p, b.p)
        xp.multiply(b.p, b.inv_n, out=b.p)
        return loss

    def _softmax_loss(self, b: _Buffers) -> Any:
        """Softmax probabilities into b.p and the summed cross-entropy."""
        xp = self.xp
        if self.exact_shift:
            loss = self._shifted_softmax(b, shift=True)
        else:
            # NumPy: a row max over 10 columns costs more than the rest of the softmax, so first try
            # without a shift; exp only overflows (or a whole row underflows) when logits pass ~88,
            # which makes the loss non-finite, and then the batch is redone with the max.
            loss = self._shifted_softmax(b, shift=False)
            if not math.isfinite(loss):
                loss = self._shifted_softmax(b, shift=True)
        xp.divide(b.p, b.s, out=b.p)
        return loss

    def _shifted_softmax(self, b: _Buffers, shift: bool) -> Any:
        """exp(z - rowmax) (or exp(z)) into b.p, row sums into b.s, and the summed cross-entropy."""
        xp = self.xp
        if shift:
            xp.max(b.z, axis=1, keepdims=True, out=b.c)
            xp.subtract(b.z, b.c, out=b.z)  # softmax is shift invariant; the loss uses the shifted z too
        xp.exp(b.z, out=b.p)
        xp.matmul(b.p, self.kones, out=b.s)  # row sums as a product: faster than sum(axis=1)
        xp.log(b.s, out=b.c)
        # Sums as dot products: vdot is one C call, ndarray.sum goes through Python wrappers.
        return xp.vdot(b.ones, b.c) - xp.vdot(b.z, b.yb)


# ----------------------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Parameters as plain JSON types (tuples become lists, NumPy scalars become Python ones)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


class _NetEstimator(BaseEstimator):
    """Shared fit/predict/state code for every estimator trained by the mini-batch engine."""

    # Hyperparameters every concrete class's __init__ sets (scikit-learn keeps them as plain attributes).
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    l2: float
    early_stopping: bool
    validation_fraction: float
    random_state: int | None
    backend: str
    momentum: float
    n_iter_no_change: int
    tol: float
    shuffle: bool
    dtype: str

    _output_kind = "identity"  # set per instance at fit for classifiers (binary vs multiclass)

    # --- hooks the concrete classes define -------------------------------------------------
    def _hidden(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _activation_name(self) -> str:
        raise NotImplementedError

    def _encode_targets(self, y: Any, n: int, dtype: type) -> tuple[np.ndarray, str, np.ndarray | None]:
        """(target matrix Y, output kind, class index per row when Y is one-hot else None)."""
        raise NotImplementedError

    def _score_scores(self, scores: np.ndarray, Y: np.ndarray) -> float:
        raise NotImplementedError

    # --- parameter checks --------------------------------------------------------------------
    def _check_params(self) -> None:
        hidden = self._hidden()
        if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ConfigError(f"hidden_layer_sizes must be a tuple of positive integers, got {hidden!r}.")
        check_choice("activation", self._activation_name(), ACTIVATIONS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("learning_rate", self.learning_rate, 0, low_open=True)
        check_number("batch_size", self.batch_size, 1, integer=True)
        check_number("epochs", self.epochs, 1, integer=True)
        check_number("l2", self.l2, 0)
        check_number("validation_fraction", self.validation_fraction, 0, 1, low_open=True, high_open=True)
        check_number("momentum", self.momentum, 0, 1, high_open=True)
        check_number("n_iter_no_change", self.n_iter_no_change, 1, integer=True)
        check_number("tol", self.tol, 0)
        if self.random_state is not None:
            check_number("random_state", self.random_state, 0, integer=True)
        resolve_dtype(self.dtype)

    # --- fitting -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, callbacks: Any = None, progress: bool | None = None) -> _NetEstimator:
        """Train on X, y for `epochs` epochs (fewer with early stopping or a callback returning True)."""
        self._check_params()
        dtype = resolve_dtype(self.dtype)
        X = check_X(X, dtype)
        n, d = X.shape
        Y, output, labels = self._encode_targets(y, n, dtype)
        backend = get_backend(self.backend)
        xp = backend.xp
        rng = np.random.default_rng(self.random_state)

        if self.early_stopping:
            n_val = int(math.ceil(self.validation_fraction * n))
            if n_val < 1 or n - n_val < 1:
                raise DataError(
                    f"Early stopping needs at least one training and one validation sample; got {n} samples "
                    f"with validation_fraction={self.validation_fraction}."
                )
            split = rng.permutation(n)
            train_idx, val_idx = np.sort(split[n_val:]), np.sort(split[:n_val])
        else:
            train_idx, val_idx = None, None

        net = _Net([d, *self._hidden(), Y.shape[1]], self._activation_name(), output, xp, dtype)
        net.init(rng)
        # Fitted attributes exist from the first epoch on, so callbacks can call predict().
        self._backend, self._net, self._output_kind = backend, net, output
        self.n_features_in_, self.backend_, self.history_ = d, backend.name, []
        self.n_outputs_ = Y.shape[1]

        X_train = X if train_idx is None else X[train_idx]
        Y_train = Y if train_idx is None else Y[train_idx]
        if labels is not None and train_idx is not None:
            labels = labels[train_idx]
        n_train = len(X_train)
        X_dev, Y_dev = backend.asarray(np.ascontiguousarray(X_train)), backend.asarray(Y_train)
        if val_idx is not None:
            X_val, Y_val = backend.asarray(X[val_idx]), backend.asarray(Y[val_idx])
        del X_train, Y_train

        # NumPy: the compiled engine when Numba is there (imported here, at the first fit, not at package import).
        engine = load_engine() if backend.name == "numpy" else None
        trainer = _Trainer(
            net,
            min(self.batch_size, n_train),
            self.optimizer,
            self.learning_rate,
            self.momentum,
            self.l2,
            exact_shift=backend.name != "numpy",
            engine=engine,
            n_rows=n_train,
        )
        cbs = CallbackList(callbacks, progress)
        best_params, best_loss, best_epoch, since_best = None, math.inf, 0, 0
        cbs.on_train_begin(self, self.epochs)
        try:
            # Overflow in exp is expected and handled (see _softmax_loss), and a diverging run is reported
            # once at the end of its epoch: no warnings per batch.
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                for epoch in range(1, self.epochs + 1):
                    t0 = time.perf_counter()
                    order = rng.permutation(n_train) if self.shuffle else np.arange(n_train)
                    if backend.name != "numpy":
                        order = backend.asarray(order)
                    total = float(trainer.epoch(X_dev, Y_dev, order, labels))
                    loss = total / n_train + self._penalty(net)
                    # The weights are checked too: a NaN can hide behind a ReLU that zeroes it.
                    if not math.isfinite(loss) or not bool(xp.isfinite(net.params).all()):
                        raise ConfigError(
                            f"Training diverged (loss {loss:.4g}, or non-finite weights) at epoch {epoch}; "
                            "lower learning_rate or standardize the features."
                        )
                    logs: dict[str, float] = {"epoch": epoch, "loss": loss}
                    if val_idx is not None:
                        logs["val_loss"], logs["val_score"] = self._evaluate(X_val, Y_val)
                    logs["seconds"] = time.perf_counter() - t0
                    self.history_.append(logs)
                    self.n_iter_, self.loss_ = epoch, loss
                    stop = False
                    if val_idx is not None:
                        if logs["val_loss"] < best_loss - self.tol:
                            best_loss, best_epoch, since_best = logs["val_loss"], epoch, 0
                            best_params = xp.array(net.params, copy=True)
                        else:
                            since_best += 1
                            stop = since_best >= self.n_iter_no_change
                    if cbs.on_epoch_end(self, epoch, logs):
                        stop = True
                    if stop:
                        break
        finally:
            cbs.on_train_end(self)
        if best_params is not None:
            # Early stopping keeps the weights of the best validation epoch, not the last one.
            net.params[...] = best_params
            self.best_epoch_, self.best_val_loss_ = best_epoch, best_loss
        return self

    def _penalty(self, net: _Net) -> float:
        if not self.l2:
            return 0.0
        return 0.5 * self.l2 * float(sum((W[:-1] * W[:-1]).sum() for W in net.layers))

    def _evaluate(self, X: Any, Y: Any) -> tuple[float, float]:
        """Mean loss (without the L2 term) and score on a held-out set already on the backend."""
        xp = self._backend.xp
        losses, scores = [], []
        for s in range(0, len(X), PREDICT_CHUNK):
            z = self._net.forward(X[s : s + PREDICT_CHUNK])
            losses.append(float(_mean_loss(xp, self._output_kind, z, Y[s : s + PREDICT_CHUNK])) * len(z))
            scores.append(self._backend.asnumpy(z))
        z = np.concatenate(scores)
        return sum(losses) / len(X), self._score_scores(z, self._backend.asnumpy(Y))

    # --- prediction --------------------------------------------------------------------------
    def _scores(self, X: Any) -> np.ndarray:
        """Host output scores for X after the boundary checks; NumPy skips every conversion."""
        self._check_fitted()
        net = self._net
        X = check_X(X, net.dtype, self.n_features_in_)
        if self._backend.name == "numpy" and len(X) <= PREDICT_CHUNK:
            return net.forward(X)
        be = self._backend
        return np.concatenate(
            [be.asnumpy(net.forward(be.asarray(X[s : s + PREDICT_CHUNK]))) for s in range(0, len(X), PREDICT_CHUNK)]
        )

    # --- model-file state --------------------------------------------------------------------
    def _fitted_state(self) -> dict[str, Any]:
        return {}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able spec and host weight arrays for the model file."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        for i, W in enumerate(self._net.layers):
            host = self._backend.asnumpy(W)
            arrays[f"coefs_{i}"] = np.ascontiguousarray(host[:-1])
            arrays[f"intercepts_{i}"] = np.ascontiguousarray(host[-1])
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "n_outputs_": int(self.n_outputs_),
            "output": self._output_kind,
            "n_layers": len(self._net.layers),
            "backend_": self.backend_,
            "n_iter_": int(getattr(self, "n_iter_", 0)),
            "loss_": float(getattr(self, "loss_", math.nan)),
            "history_": _jsonable(self.history_),
            **self._fitted_state(),
        }
        if hasattr(self, "best_epoch_"):
            fitted["best_epoch_"], fitted["best_val_loss_"] = int(self.best_epoch_), float(self.best_val_loss_)
        spec = {"estimator": type(self).__name__, "params": _jsonable(self.get_params()), "fitted": fitted}
        return spec, arrays

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        pass

    @classmethod
    def _from_state(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray], backend: str = "numpy") -> Any:
        """Rebuild a fitted estimator from _get_state() output, with its weights on `backend`."""
        est = _construct(cls, spec)
        try:
            fitted = spec["fitted"]
            n_layers = int(fitted["n_layers"])
            coefs = [np.asarray(arrays[f"coefs_{i}"]) for i in range(n_layers)]
            intercepts = [np.asarray(arrays[f"intercepts_{i}"]) for i in range(n_layers)]
            est._restore_fitted(fitted)
            dtype = resolve_dtype(est.dtype)
            be = get_backend(backend)
            sizes = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
            net = _Net(sizes, est._activation_name(), fitted["output"], be.xp, dtype)
            for W, c, b in zip(net.layers, coefs, intercepts):
                if c.shape != (W.shape[0] - 1, W.shape[1]) or b.shape != (W.shape[1],):
                    raise ModelFileError(
                        "The model file's weight arrays have inconsistent shapes; the file is damaged."
                    )
                host: np.ndarray = np.concatenate([c, b[None, :]]).astype(dtype)
                W[...] = be.asarray(host)
            if sizes[0] != int(fitted["n_features_in_"]):
                raise ModelFileError("The model file's weights do not match its feature count; the file is damaged.")
            est._backend, est._net, est._output_kind = be, net, fitted["output"]
            est.n_features_in_, est.n_outputs_, est.backend_ = sizes[0], int(fitted["n_outputs_"]), be.name
            est.history_ = list(fitted.get("history_", []))
            est.n_iter_, est.loss_ = int(fitted.get("n_iter_", 0)), float(fitted.get("loss_", math.nan))
            if "best_epoch_" in fitted:
                est.best_epoch_, est.best_val_loss_ = int(fitted["best_epoch_"]), float(fitted["best_val_loss_"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFileError(
                f"The model file's {cls.__name__} state is incomplete or invalid ({type(exc).__name__}: {exc})."
            ) from None
        return est


def _construct(cls: type, spec: dict[str, Any]) -> Any:
    """Instantiate cls from a spec's params, turning bad params into ModelFileError."""
    try:
        params = dict(spec["params"])
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        return cls(**params)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The model file's {cls.__name__} parameters are invalid ({exc}).") from None


def _mean_loss(xp: ModuleType, output: str, z: Any, Y: Any) -> Any:
    """Mean per-sample loss of output scores z against target matrix Y (allocating; for evaluation)."""
    if output == "softmax":
        m = z.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(z - m).sum(axis=1)) + m[:, 0]
        return (lse - (z * Y).sum(axis=1)).mean()
    if output == "logistic":
        return (xp.logaddexp(0, z) - z * Y).mean()
    return 0.5 * ((z - Y) ** 2).sum(axis=1).mean()


# The mini-batch engine's hyperparameters with the MLPs' defaults, in signature order.
ENGINE_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 256,
    "epochs": 4,
    "l2": 0.0,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "random_state": 0,
    "backend": "auto",
    "momentum": 0.9,
    "n_iter_no_change": 3,
    "tol": 1e-4,
    "shuffle": True,
    "dtype": "float32",
}


def _engine_init(leading: dict[str, Any] | None = None, **defaults: Any) -> Callable[..., None]:
    """The __init__ of an estimator trained by the engine: it stores each hyperparameter as an attribute, as
    scikit-learn's do, and its signature (which get_params, set_params, repr and clone read) lists `leading` first,
    then ENGINE_DEFAULTS with `defaults` overriding their default values."""
    unknown = set(defaults) - set(ENGINE_DEFAULTS)
    if unknown:
        raise TypeError(f"not engine hyperparameters: {sorted(unknown)}")
    table = {**(leading or {}), **ENGINE_DEFAULTS, **defaults}
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    annotations = _NetEstimator.__annotations__
    signature = inspect.Signature(
        [inspect.Parameter("self", kind)]
        + [
            inspect.Parameter(name, kind, default=value, annotation=annotations.get(name, inspect.Parameter.empty))
            for name, value in table.items()
        ],
        return_annotation=None,
    )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}(): {exc}") from None
        bound.apply_defaults()
        for name in table:
            setattr(self, name, bound.arguments[name])

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


class _ClassifierNet(ClassifierMixin, _NetEstimator):
    """Label encoding, predict and predict_proba for network classifiers."""

    def _encode_targets(self, y: Any, n: int, dtype: type) -> tuple[np.ndarray, str, np.ndarray | None]:
        y = check_labels(y, n)
        classes, idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"y has a single class ({classes[0]!r}); a classifier needs at least two.")
        self.classes_ = classes
        if len(classes) == 2:
            # Binary: one logistic output, as scikit-learn does.
            return idx.astype(dtype).reshape(-1, 1), "logistic", None
        Y: np.ndarray = np.zeros((n, len(classes)), dtype=dtype)
        Y[np.arange(n), idx] = 1.0
        return Y, "softmax", idx  # the compiled engine reads the class index instead of the one-hot row

    def _score_scores(self, scores: np.ndarray, Y: np.ndarray) -> float:
        if scores.shape[1] == 1:
            return float(np.mean((scores[:, 0] > 0) == (Y[:, 0] > 0.5)))
        return float(np.mean(scores.argmax(axis=1) == Y.argmax(axis=1)))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (from classes_) for each row of X."""
        z = self._scores(X)
        idx = (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else z.argmax(axis=1)
        return self.classes_[idx]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as classes_."""
        z = self._scores(X)
        if z.shape[1] == 1:
            p = _sigmoid(np, z[:, 0], np.empty(len(z), dtype=z.dtype))
            return np.stack([1.0 - p, p], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def _fitted_state(self) -> dict[str, Any]:
        return {"classes_": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str}

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        self.classes_ = _restore_classes(fitted)


def _restore_classes(fitted: dict[str, Any]) -> np.ndarray:
    """classes_ from a spec, refusing object dtypes (a model file must not need pickle)."""
    dtype = np.dtype(fitted["classes_dtype"])
    if dtype.kind not in "iubUSf":
        raise ModelFileError(f"The model file's class labels have unsupported dtype {dtype}.")
    return np.asarray(fitted["classes_"], dtype=dtype)


class _RegressorNet(RegressorMixin, _NetEstimator):
    """Target handling and predict for network regressors."""

    def _encode_targets(self, y: Any, n: int, dtype: type) -> tuple[np.ndarray, str, np.ndarray | None]:
        y = check_targets(y, n, dtype)
        self._y_ndim = y.ndim
        return y.reshape(n, -1), "identity", None

    def _score_scores(self, scores: np.ndarray, Y: np.ndarray) -> float:
        from .base import r2  # noqa: PLC0415

        return r2(Y, scores)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: shape (n,) when fitted on 1-D y, else (n, n_outputs)."""
        z = self._scores(X)
        return z[:, 0] if self._y_ndim == 1 else z

    def _fitted_state(self) -> dict[str, Any]:
        return {"y_ndim": int(self._y_ndim)}

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        self._y_ndim = int(fitted["y_ndim"])


class _MLPMixin(_NetEstimator):
    """The MLPs' hyperparameters (the network's shape, then the engine's) and coefs_ / intercepts_ as host arrays,
    like scikit-learn's MLPs."""

    hidden_layer_sizes: tuple[int, ...]
    activation: str

    __init__ = _engine_init({"hidden_layer_sizes": (256,), "activation": "relu"})

    def _hidden(self) -> tuple[int, ...]:
        return tuple(self.hidden_layer_sizes)

    def _activation_name(self) -> str:
        return self.activation

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices, one (fan_in, fan_out) array per layer."""
        self._check_fitted()
        return [self._backend.asnumpy(W[:-1]).copy() for W in self._net.layers]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, one per layer."""
        self._check_fitted()
        return [self._backend.asnumpy(W[-1]).copy() for W in self._net.layers]


class MLPClassifier(_MLPMixin, _ClassifierNet):
    """Feed-forward neural network classifier (softmax output; logistic for two classes)."""


class MLPRegressor(_MLPMixin, _RegressorNet):
    """Feed-forward neural network regressor (identity output, squared-error loss)."""
