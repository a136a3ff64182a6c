"""Compiled CPU training engine (Numba) for the NumPy backend.

The `xp` engine in mlp.py drives each batch from Python: five matrix products and a dozen
in-place array ops, each a separate call that re-reads its arrays. On the CPU that costs as much
as a third of the matrix products themselves. Here one compiled call runs a whole epoch:

- shuffled rows are gathered a chunk of batches (~2 MiB) at a time, so random reads overlap
  and batches are contiguous slices (class indices instead of one-hot rows for softmax);
- the five matrix products per batch go to the same BLAS `sgemm`/`dgemm` NumPy's matmul uses
  (NumPy's own OpenBLAS, found in its wheel and checked against np.matmul before use), so the
  library, its threads and threadpoolctl limits are those of np.matmul;
- every elementwise stage is one pass: bias + activation, activation backward + bias gradient
  (column sums), output layer (bias, softmax / sigmoid / identity, loss, gradient, column
  sums), and the Adam or SGD update over the flat parameter vector;
- with more than one core, each batch is split by rows over as many threads ("parts") as BLAS
  would use: every part runs the forward and backward pass on its rows with single-threaded
  BLAS into its own gradient row, then (after a spin barrier) updates its share of the
  parameters from the summed rows. For these small products that beats one multi-threaded
  BLAS call per product: the elementwise work is split too, and each core keeps reading the
  activations it wrote instead of pulling half of them from the other core's cache.

It is a CPU specialisation only: CuPy, and NumPy without Numba (or without a BLAS found this
way), run the `xp` code in mlp.py and optim.py, which stays the reference implementation.
This module imports Numba, so mlp.py imports it only at the first fit that wants it
(`mlp.load_engine()`), keeping `import aidevops_ext.trainer` cheap; AIDEVOPS_NUMBA=0 forces
the `xp` path.

Kernels are compiled with `cache=True` (machine code is kept in __pycache__ next to this file,
or under NUMBA_CACHE_DIR; the first use on a machine compiles for several seconds, later
processes load it in well under a second), `fastmath=False` (IEEE semantics: no reassociation,
no FMA contraction, so the updates match the NumPy ops they replace) and
`error_model="numpy"` (division by zero gives inf/nan like NumPy instead of a per-element
Python check, which also lets LLVM vectorise). Scalars are passed in the arrays' dtype so
float32 arithmetic stays float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# Activation, output and optimizer codes shared with mlp.py.
ACT_CODES = {"relu": 0, "tanh": 1, "logistic": 2, "identity": 3}
OUT_CODES = {"softmax": 0, "logistic": 1, "identity": 2}

# cblas constants (row-major calls; transposes are flags, never copies).
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _blas_libraries() -> list[str]:
    """NumPy's bundled BLAS shared libraries (pip wheels: numpy.libs/ on Linux and Windows, numpy/.dylibs/ on macOS)."""
    pkg = os.path.dirname(np.__file__)
    found: list[str] = []
    for pattern in (
        os.path.join(pkg, os.pardir, "numpy.libs", "*openblas*"),
        os.path.join(pkg, ".dylibs", "*openblas*"),
    ):
        found.extend(sorted(glob.glob(pattern)))
    return found


# Symbol names NumPy wheels have used for cblas gemm, with whether their integers are 64-bit.
_GEMM_SYMBOLS = (
    ("scipy_cblas_{}gemm64_", True),
    ("cblas_{}gemm64_", True),
    ("scipy_cblas_{}gemm", False),
    ("cblas_{}gemm", False),
)


def _find_blas() -> tuple[Any, dict[str, Any]]:
    """NumPy's BLAS library and ctypes pointers to its cblas sgemm/dgemm keyed by dtype name ((None, {}) if not found)."""
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library, the same thread pool
        except OSError:
            continue
        for pattern, ilp64 in _GEMM_SYMBOLS:
            try:
                syms = {"float32": getattr(lib, pattern.format("s")), "float64": getattr(lib, pattern.format("d"))}
            except AttributeError:
                continue
            integer = ctypes.c_int64 if ilp64 else ctypes.c_int32
            out = {}
            for name, scalar in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
                proto = ctypes.CFUNCTYPE(
                    None,
                    ctypes.c_int,
                    ctypes.c_int,
                    ctypes.c_int,
                    integer,
                    integer,
                    integer,
                    scalar,
                    ctypes.c_void_p,
                    integer,
                    ctypes.c_void_p,
                    integer,
                    scalar,
                    ctypes.c_void_p,
                    integer,
                )
                out[name] = proto(ctypes.cast(syms[name], ctypes.c_void_p).value or 0)
            return lib, out
    return None, {}


def _thread_control(lib: Any) -> tuple[Any, Any]:
    """(get, set) for the BLAS library's thread count, or (None, None) when it has no such symbols."""
    for prefix in ("scipy_", ""):
        for suffix in ("64_", ""):
            try:
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
            except AttributeError:
                continue
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            return get, set_
    return None, None


def _sched_yield() -> Any:
    """A ctypes pointer to sched_yield (POSIX), for the spin barrier between parts; None elsewhere."""
    try:
        fn = ctypes.CDLL(None).sched_yield
    except (OSError, AttributeError, TypeError):
        return None
    return ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.cast(fn, ctypes.c_void_p).value or 0)


jit = njit(cache=True, fastmath=False, nogil=True, error_model="numpy")  # see the module docstring


def _exp32(x):  # pragma: no cover - compiled
    """exp for float32 in plain arithmetic LLVM can vectorise (libm's expf is a scalar call).

    Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (two-part ln2), a degree-7 polynomial for
    e^r, and 2^n built in the exponent bits. Max error under 1 ulp over [-87, 0.5] (NumPy's
    own float32 exp is within 2.5 ulp there). Below -87 it returns 0 (true values are under
    1.7e-38: the softmax terms it feeds are sums >= 1); NaN stays NaN. Only used for x <= 0.
    """
    lo = np.float32(-87.0)
    xc = x if x > lo else lo
    fx = np.floor(xc * np.float32(1.4426950408889634) + np.float32(0.5))
    r = xc - fx * np.float32(0.693359375) - fx * np.float32(-2.12194440e-4)
    y = (
        (
            (
                (
                    ((np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)) * r + np.float32(8.3334519073e-3))
                    * r
                    + np.float32(4.1665795894e-2)
                )
                * r
                + np.float32(1.6666665459e-1)
            )
            * r
            + np.float32(5.0000001201e-1)
        )
        * (r * r)
        + r
        + np.float32(1.0)
    )
    y = y * np.int32((np.int32(fx) + np.int32(127)) << np.int32(23)).view(np.float32)
    y = np.float32(0.0) if x < lo else y
    return x if x != x else y


def fast_exp(x):  # pragma: no cover - resolved by the overload below
    raise NotImplementedError


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):  # pragma: no cover - compile-time dispatch
    if x == types.float32:
        return _exp32
    return lambda x: np.exp(x)  # float64: libm's exp (exact to the last bit the tests ask for)


@jit
def bias_act(h, b, act):  # pragma: no cover - compiled
    """h = act(h + b) in place, b broadcast over rows."""
    n, m = h.shape
    zero, half = h.dtype.type(0), h.dtype.type(0.5)
    if act == 0:
        for i in range(n):
            for j in range(m):
                v = h[i, j] + b[j]
                h[i, j] = zero if v < zero else v  # NaN passes through, like np.maximum
    elif act == 1:
        for i in range(n):
            for j in range(m):
                h[i, j] = np.tanh(h[i, j] + b[j])
    elif act == 2:
        for i in range(n):
            for j in range(m):
                h[i, j] = np.tanh((h[i, j] + b[j]) * half) * half + half
    else:
        for i in range(n):
            for j in range(m):
                h[i, j] = h[i, j] + b[j]


@jit
def act_back(d, h, gb, act):  # pragma: no cover - compiled
    """d *= act'(.) given the activation output h, in place; gb = column sums of the result."""
    n, m = d.shape
    zero, one = d.dtype.type(0), d.dtype.type(1)
    for j in range(m):
        gb[j] = zero
    for i in range(n):
        if act == 0:
            for j in range(m):
                v = d[i, j] if h[i, j] > zero else zero
                d[i, j] = v
                gb[j] += v
        elif act == 1:
            for j in range(m):
                a = h[i, j]
                v = d[i, j] * (one - a * a)
                d[i, j] = v
                gb[j] += v
        elif act == 2:
            for j in range(m):
                a = h[i, j]
                v = d[i, j] * ((one - a) * a)
                d[i, j] = v
                gb[j] += v
        else:
            for j in range(m):
                gb[j] += d[i, j]


@jit
def softmax_xent(z, b, Y, lab, p, gb, work, inv_n):  # pragma: no cover - compiled
    """Softmax + cross-entropy: bias into z, gradient (softmax - y) / n into p, its column sums into gb.

    Targets are the one-hot rows Y, or, when `lab` is not empty, the class indices lab (Y is
    then not read). Each row is shifted by its max. The work is done on a (k + 3, n)
    scratch holding the transposed logits, so every pass runs along the batch (n = 256 lanes
    wide) instead of along rows only k = 10 wide. Returns the summed loss (float64).
    """
    n, k = z.shape
    m, s, zy = work[k], work[k + 1], work[k + 2]
    zero = z.dtype.type(0)
    for i in range(n):
        m[i] = z[i, 0] + b[0]
    for c in range(k):
        bc = b[c]
        for i in range(n):
            v = z[i, c] + bc
            work[c, i] = v
            mi = m[i]
            m[i] = v if v > mi else mi  # a select, not a branch: which class is largest is unpredictable
    if lab.shape[0]:
        for i in range(n):
            zy[i] = work[lab[i], i]
    else:
        for i in range(n):
            zy[i] = zero
        for c in range(k):
            for i in range(n):
                zy[i] += work[c, i] * Y[i, c]
    for i in range(n):
        s[i] = zero
    for c in range(k):
        for i in range(n):
            e = fast_exp(work[c, i] - m[i])
            work[c, i] = e
            s[i] += e
    # loss = sum(log(s) + m - zy). Each s is in [1, k] (the max term is exp(0) = 1), so products of
    # 16 of them stay far inside float64's range: one log per 16 rows instead of per row, which
    # matters because libm's log reads lookup tables that the matrix products evict from cache.
    loss, prod = 0.0, 1.0
    for i in range(n):
        loss += float(m[i]) - float(zy[i])
        prod *= float(s[i])
        if i % 16 == 15:
            loss += math.log(prod)
            prod = 1.0
        s[i] = inv_n / s[i]
    loss += math.log(prod)
    for c in range(k):
        for i in range(n):
            p[i, c] = work[c, i] * s[i]
    if lab.shape[0]:
        for i in range(n):
            p[i, lab[i]] -= inv_n
    else:
        for i in range(n):
            for c in range(k):
                p[i, c] -= Y[i, c] * inv_n
    for c in range(k):
        gb[c] = zero
    for i in range(n):
        for c in range(k):
            gb[c] += p[i, c]
    return loss


@jit
def output(z, b, Y, p, gb, inv_n, kind):  # pragma: no cover - compiled
    """Other outputs: bias into z; p = d(mean loss)/dz; gb = column sums of p; returns the summed loss.

    kind 1: sigmoid + binary cross-entropy on logits, 2: identity + half squared error.
    These have one or a few columns, so plain row loops do. Sums accumulate in float64.
    """
    n, k = z.shape
    for j in range(k):
        gb[j] = 0
    loss = 0.0
    half = p.dtype.type(0.5)
    for i in range(n):
        if kind == 1:
            for j in range(k):
                v = z[i, j] + b[j]
                z[i, j] = v
                fv = float(v)
                # softplus(v) - v*y, stably: max(v, 0) + log1p(exp(-|v|)) - v*y
                loss += max(fv, 0.0) + math.log1p(math.exp(-abs(fv))) - fv * float(Y[i, j])
                g = ((np.tanh(v * half) * half + half) - Y[i, j]) * inv_n
                p[i, j] = g
                gb[j] += g
        else:
            for j in range(k):
                v = z[i, j] + b[j]
                z[i, j] = v
                r = v - Y[i, j]
                loss += 0.5 * float(r) * float(r)
                g = r * inv_n
                p[i, j] = g
                gb[j] += g
    return loss


@jit
def _adam(p, g, h, n, u, b1, b2, scale, shift):  # pragma: no cover - compiled
    """Adam on flat arrays with gradient g (+ h when h is not empty); see optim.Adam for n, u, scale, shift."""
    if h.shape[0]:
        for i in range(p.shape[0]):
            gi = g[i] + h[i]
            ni = n[i] * b1 + gi
            n[i] = ni
            ui = u[i] * b2 + gi * gi
            u[i] = ui
            p[i] -= ni / (np.sqrt(ui) * scale + shift)
    else:
        for i in range(p.shape[0]):
            gi = g[i]
            ni = n[i] * b1 + gi
            n[i] = ni
            ui = u[i] * b2 + gi * gi
            u[i] = ui
            p[i] -= ni / (np.sqrt(ui) * scale + shift)


@jit
def _sgd(p, g, h, w, lr, momentum):  # pragma: no cover - compiled
    """SGD on flat arrays with gradient g (+ h when h is not empty); momentum buffer w unless it is empty."""
    for i in range(p.shape[0]):
        gi = g[i] + h[i] if h.shape[0] else g[i]
        if w.shape[0]:
            wi = w[i] * momentum + gi
            w[i] = wi
            p[i] -= wi * lr
        else:
            p[i] -= gi * lr


@jit
def update(params, G, m1, m2, lo, hi, opt, b1, b2, scale, shift, lr, momentum):  # pragma: no cover - compiled
    """Optimizer step on params[lo:hi] with gradient G[0] + G[1] + ... (one row per part, summed in order).

    opt 0: Adam with n, u = m1, m2 (see optim.Adam for the n, u, scale, shift reparametrisation);
    1: SGD (momentum buffer w = m1, empty for none). The float operations and their order are
    those of the xp code in optim.py. Loops run over slices from 0 (LLVM vectorises those; loops
    over range(lo, hi) it does not).
    """
    if G.shape[0] > 2:  # three parts or more: sum the rows into row 0 first, in part order
        for q in range(1, G.shape[0]):
            G[0, lo:hi] += G[q, lo:hi]
    g = G[0, lo:hi]
    h = G[1, lo:hi] if G.shape[0] == 2 else G[0, :0]
    if opt == 0:
        _adam(params[lo:hi], g, h, m1[lo:hi], m2[lo:hi], b1, b2, scale, shift)
    else:
        _sgd(params[lo:hi], g, h, m1[lo:hi] if m1.shape[0] else m1, lr, momentum)


# --- synchronisation between the parts of a batch (one thread each) ---------------------------
@intrinsic
def _atomic_add(typingctx, arr, idx, val):  # pragma: no cover - compile-time
    """Atomically arr[idx] += val; returns the old value (int64 arrays)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):  # pragma: no cover - compile-time
    """arr[idx] read atomically with acquire ordering (int64 arrays): never hoisted out of a spin loop."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@jit
def barrier(sync, parts, yield_cpu):  # pragma: no cover - compiled
    """Wait until all `parts` threads have arrived; False, or True when told to abort.

    sync[0] counts arrivals, sync[1] is the generation, sync[2] non-zero aborts every waiter
    (the caller sets it if a thread could not be started). Spins (the wait is a few
    microseconds when every thread has a core), and yields the CPU every few thousand spins so
    a descheduled partner can run on a busy machine.
    """
    if parts == 1:
        return False
    generation = _atomic_load(sync, 1)
    if _atomic_add(sync, 0, 1) == parts - 1:
        _atomic_add(sync, 0, -parts)
        _atomic_add(sync, 1, 1)
        return _atomic_load(sync, 2) != 0
    spins = 0
    while _atomic_load(sync, 1) == generation:
        if _atomic_load(sync, 2) != 0:
            return True
        spins += 1
        if spins == 2000:
            yield_cpu()
            spins = 0
    return _atomic_load(sync, 2) != 0


@jit
def gemm_ptr(gemm, ta, tb, M, N, K, a_ptr, b_ptr, C):  # pragma: no cover - compiled
    """C = op(A) @ op(B), A and B C-contiguous at raw pointers, C (M x N) an array; op transposes when ta / tb is set."""
    gemm(
        ROW_MAJOR,
        TRANS if ta else NO_TRANS,
        TRANS if tb else NO_TRANS,
        M,
        N,
        K,
        C.dtype.type(1),
        a_ptr,
        M if ta else K,
        b_ptr,
        K if tb else N,
        C.dtype.type(0),
        C.ctypes.data,
        N,
    )


@jit
def gemm_call(gemm, ta, tb, A, B, C):  # pragma: no cover - compiled
    """C = op(A) @ op(B) for C-contiguous A, B, C; op transposes when ta / tb is set."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    gemm_ptr(gemm, ta, tb, M, N, K, A.ctypes.data, B.ctypes.data, C)


@jit
def gemm_repeat(gemm, ta, tb, A, B, C, calls):  # pragma: no cover - compiled
    """gemm_call `calls` times (benchmarks time BLAS alone this way, without Python in the loop)."""
    for _ in range(calls):
        gemm_call(gemm, ta, tb, A, B, C)


@jit
def gather_part(X, Y, lab, order, batch, part, parts, xs, ys, ls):  # pragma: no cover - compiled
    """Gather this part's rows of every batch in `order` (a chunk of whole batches but maybe the last).

    Batch j's rows [nb * part // parts, nb * (part + 1) // parts) land at xs[j * slot:], with slot
    = ceil(batch / parts); targets likewise into ys, or class indices into ls when lab is not empty.
    """
    n = order.shape[0]
    slot = -(-batch // parts)
    d, k = X.shape[1], Y.shape[1]
    for j in range(-(-n // batch)):
        s = j * batch
        nb = min(batch, n - s)
        lo, hi = s + nb * part // parts, s + nb * (part + 1) // parts
        for i in range(hi - lo):
            r = order[lo + i]
            row = j * slot + i
            for c in range(d):
                xs[row, c] = X[r, c]
            if lab.shape[0]:
                ls[row] = lab[r]
            else:
                for c in range(k):
                    ys[row, c] = Y[r, c]


@jit
def train_part(
    part,
    parts,
    X,
    Y,
    lab,
    order,
    xs,
    ys,
    ls,
    params,
    G,
    layout,
    acts,
    dacts,
    z,
    p,
    work,
    act,
    out_kind,
    batch,
    chunk,
    l2,
    opt,
    hyper,
    m1,
    m2,
    t,
    gemm,
    sync,
    yield_cpu,
    losses,
):  # pragma: no cover - compiled
    """One epoch of mini-batch training over rows `order` of X, as part `part` of `parts` threads.

    Each batch's rows are split into `parts` contiguous parts; every part runs the forward and
    backward pass on its rows (BLAS single-threaded) into its own gradient row G[part]; after a
    barrier each part applies the optimizer to its share of the parameters, summing the
    gradient rows; a second barrier and the next batch starts. One part is the plain serial
    loop. Returns the optimizer step count; the part's summed loss goes to losses[part].

    Layer i's weights are params[off:off + (fan_in + 1) * fan_out] as a (fan_in + 1, fan_out)
    block whose last row is the bias, with layout[i] = (fan_in, fan_out, off, act_off) and
    act_off its output's offset in a part's acts / dacts row (hidden layers). Targets: class
    indices `lab` (softmax, when not empty) or rows of Y. xs / ys / ls / acts / dacts / z / p /
    work / G hold one row (or block) per part. Optimizer opt 0: Adam (hyper = lr, beta1, beta2,
    eps; m1, m2 = n, u as in optim.Adam), 1: SGD (hyper = lr, momentum; m1 = w as in optim.SGD).
    """
    dt = params.dtype.type
    zero = dt(0)
    nl = layout.shape[0]
    k = z.shape[2]
    n_total, n_params = order.shape[0], params.shape[0]
    slot = -(-batch // parts)
    xs, ys, ls, acts, dacts, z, p, work, g = (
        xs[part],
        ys[part],
        ls[part],
        acts[part],
        dacts[part],
        z[part],
        p[part],
        work[part],
        G[part],
    )
    lo_param, hi_param = n_params * part // parts, n_params * (part + 1) // parts
    l2t = dt(l2)
    lr, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
    total = 0.0
    for c0 in range(0, n_total, chunk):
        c1 = min(c0 + chunk, n_total)
        gather_part(X, Y, lab, order[c0:c1], batch, part, parts, xs, ys, ls)
        for j in range(-(-(c1 - c0) // batch)):
            nb = min(batch, c1 - c0 - j * batch)
            rows = nb * (part + 1) // parts - nb * part // parts
            inv_n = dt(1.0 / nb)  # the loss is the mean over the whole batch, whichever part has the row
            s = j * slot
            if rows == 0:  # a batch smaller than the number of parts
                g[:] = zero
                if l2t != zero and part == 0:
                    for i in range(nl):
                        for q in range(layout[i, 2], layout[i, 2] + layout[i, 0] * layout[i, 1]):
                            g[q] += params[q] * l2t
            else:
                x_ptr = xs[s:].ctypes.data
                # Forward.
                a_ptr = x_ptr
                for i in range(nl - 1):
                    fin, fout, off, aoff = layout[i, 0], layout[i, 1], layout[i, 2], layout[i, 3]
                    h = acts[aoff : aoff + rows * fout].reshape(rows, fout)
                    gemm_ptr(gemm, False, False, rows, fout, fin, a_ptr, params[off:].ctypes.data, h)
                    bias_act(h, params[off + fin * fout : off + (fin + 1) * fout], act)
                    a_ptr = h.ctypes.data
                fin, fout, off = layout[nl - 1, 0], layout[nl - 1, 1], layout[nl - 1, 2]
                zb, pb = z[:rows], p[:rows]
                gemm_ptr(gemm, False, False, rows, fout, fin, a_ptr, params[off:].ctypes.data, zb)
                bias = params[off + fin * fout : off + (fin + 1) * fout]
                gb = g[off + fin * fout : off + (fin + 1) * fout]
                if out_kind == 0:
                    total += softmax_xent(
                        zb,
                        bias,
                        ys[s : s + rows],
                        ls[s : s + rows] if lab.shape[0] else ls[:0],
                        pb,
                        gb,
                        work[: (k + 3) * rows].reshape(k + 3, rows),
                        inv_n,
                    )
                else:
                    total += output(zb, bias, ys[s : s + rows], pb, gb, inv_n, out_kind)
                # Backward: dz (mean-loss gradient w.r.t. this layer's output) starts as pb.
                dz_ptr = pb.ctypes.data
                for i in range(nl - 1, -1, -1):
                    fin, fout, off = layout[i, 0], layout[i, 1], layout[i, 2]
                    ain_ptr = x_ptr if i == 0 else acts[layout[i - 1, 3] :].ctypes.data
                    # Weight gradient: a_in.T @ dz.
                    gemm_ptr(gemm, True, False, fin, fout, rows, ain_ptr, dz_ptr, g[off:])
                    if l2t != zero and part == 0:  # the L2 term once, in part 0's gradient row
                        for q in range(off, off + fin * fout):
                            g[q] += params[q] * l2t
                    if i:
                        pin, pout, poff, paoff = layout[i - 1, 0], layout[i - 1, 1], layout[i - 1, 2], layout[i - 1, 3]
                        da = dacts[paoff : paoff + rows * fin].reshape(rows, fin)
                        # Delta to the previous layer: dz @ W.T.
                        gemm_ptr(gemm, False, True, rows, fin, fout, dz_ptr, params[off:].ctypes.data, da)
                        act_back(
                            da,
                            acts[paoff : paoff + rows * fin].reshape(rows, fin),
                            g[poff + pin * pout : poff + (pin + 1) * pout],
                            act,
                        )
                        dz_ptr = da.ctypes.data
            # Update: every part's gradient row is complete; each part updates its share of params.
            if barrier(sync, parts, yield_cpu):
                return t
            t += 1
            if opt == 0:
                a_t = lr * (1.0 - b1) / (1.0 - b1 ** float(t))
                c_t = math.sqrt((1.0 - b2) / (1.0 - b2 ** float(t)))
                update(
                    params, G, m1, m2, lo_param, hi_param, 0, dt(b1), dt(b2), dt(c_t / a_t), dt(eps / a_t), zero, zero
                )
            else:
                update(params, G, m1, m2, lo_param, hi_param, 1, zero, zero, zero, zero, dt(lr), dt(b1))
            if barrier(sync, parts, yield_cpu):  # params are whole again before anyone's next forward pass
                return t
    losses[part] = total
    return t


def _checked_gemm(pointers: dict[str, Any]) -> dict[str, Any]:
    """The gemm pointers, each checked against np.matmul (all four transpose combinations); {} on any mismatch."""
    rng = np.random.default_rng(0)
    for name, ptr in pointers.items():
        for ta in (False, True):
            for tb in (False, True):
                A = rng.standard_normal((3, 5) if ta else (5, 3)).astype(name)
                B = rng.standard_normal((4, 3) if tb else (3, 4)).astype(name)
                C = np.full((5, 4), np.nan, dtype=name)
                gemm_call(ptr, ta, tb, A, B, C)
                if not np.allclose(C, (A.T if ta else A) @ (B.T if tb else B), rtol=1e-4, atol=1e-5):
                    return {}
    return pointers if set(pointers) == {"float32", "float64"} else {}


try:
    _LIB, _POINTERS = _find_blas()
except (OSError, ValueError, TypeError):
    _LIB, _POINTERS = None, {}
GEMM = _checked_gemm(_POINTERS)  # {} when NumPy's BLAS was not found: mlp.load_engine() then uses the xp path
_GET_THREADS, _SET_THREADS = _thread_control(_LIB) if GEMM else (None, None)
YIELD = _sched_yield()


def blas_threads() -> int | None:
    """The thread count NumPy's BLAS would use now (None when unknown)."""
    return int(_GET_THREADS()) if _GET_THREADS is not None else None


def set_blas_threads(n: int) -> None:
    """Set NumPy's BLAS thread count (the engine runs one single-threaded BLAS per part)."""
    if _SET_THREADS is not None:
        _SET_THREADS(int(n))


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved: int | None = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """NumPy's BLAS on one thread for the duration, restored after (reference-counted across threads).

    Fits running at once in several Python threads share one BLAS setting: the first to enter
    saves it and the last to leave restores it, so none can leave BLAS stuck at one thread.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = blas_threads()
            set_blas_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_saved is not None:
                set_blas_threads(_blas_saved)


def max_parts() -> int:
    """How many threads the engine may split a batch over: BLAS's own thread count (1 without thread control)."""
    if _SET_THREADS is None or YIELD is None:
        return 1
    return max(1, min(blas_threads() or 1, os.cpu_count() or 1))
