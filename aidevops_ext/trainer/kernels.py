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
  sums), and the Adam or SGD update over the flat parameter vector.

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

import ctypes
import glob
import math
import os
from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import overload

# Activation, output and optimizer codes shared with mlp.py.
ACT_CODES = {"relu": 0, "tanh": 1, "logistic": 2, "identity": 3}
OUT_CODES = {"softmax": 0, "logistic": 1, "identity": 2}

# cblas constants (row-major calls; transposes are flags, never copies).
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

def _blas_libraries() -> list[str]:
    """NumPy's bundled BLAS shared libraries (pip wheels: numpy.libs/ on Linux and Windows, numpy/.dylibs/ on macOS)."""
    pkg = os.path.dirname(np.__file__)
    found: list[str] = []
    for pattern in (os.path.join(pkg, os.pardir, "numpy.libs", "*openblas*"),
                    os.path.join(pkg, ".dylibs", "*openblas*")):
        found.extend(sorted(glob.glob(pattern)))
    return found


# Symbol names NumPy wheels have used for cblas gemm, with whether their integers are 64-bit.
_GEMM_SYMBOLS = (("scipy_cblas_{}gemm64_", True), ("cblas_{}gemm64_", True),
                 ("scipy_cblas_{}gemm", False), ("cblas_{}gemm", False))


def _gemm_pointers() -> dict[str, Any]:
    """ctypes function pointers to NumPy's cblas sgemm/dgemm keyed by dtype name ({} when not found)."""
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
                proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                                         scalar, ctypes.c_void_p, integer, ctypes.c_void_p, integer, scalar,
                                         ctypes.c_void_p, integer)
                out[name] = proto(ctypes.cast(syms[name], ctypes.c_void_p).value)
            return out
    return {}



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
    y = (((((np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)) * r
            + np.float32(8.3334519073e-3)) * r + np.float32(4.1665795894e-2)) * r
          + np.float32(1.6666665459e-1)) * r + np.float32(5.0000001201e-1)) * (r * r) + r + np.float32(1.0)
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
def gather_labels(X, lab, idx, xs, ls):  # pragma: no cover - compiled
    """xs[i] = X[idx[i]], ls[i] = lab[idx[i]]: class indices instead of one-hot rows (a fifth of the memory traffic)."""
    d = X.shape[1]
    for i in range(idx.shape[0]):
        r = idx[i]
        for j in range(d):
            xs[i, j] = X[r, j]
        ls[i] = lab[r]

@jit
def gather_rows(X, Y, idx, xs, ys):  # pragma: no cover - compiled
    """xs[i] = X[idx[i]], ys[i] = Y[idx[i]] for i < len(idx)."""
    d, k = X.shape[1], Y.shape[1]
    for i in range(idx.shape[0]):
        r = idx[i]
        for j in range(d):
            xs[i, j] = X[r, j]
        for j in range(k):
            ys[i, j] = Y[r, j]

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
def adam(p, g, n, u, b1, b2, scale, shift):  # pragma: no cover - compiled
    """One Adam step over flat arrays (see optim.Adam for the n, u, scale, shift reparametrisation)."""
    for i in range(p.shape[0]):
        gi = g[i]
        ni = n[i] * b1 + gi
        n[i] = ni
        ui = u[i] * b2 + gi * gi
        u[i] = ui
        p[i] -= ni / (np.sqrt(ui) * scale + shift)

@jit
def sgd_momentum(p, g, w, momentum, lr):  # pragma: no cover - compiled
    """w = momentum*w + g; p -= lr*w over flat arrays."""
    for i in range(p.shape[0]):
        wi = w[i] * momentum + g[i]
        w[i] = wi
        p[i] -= wi * lr

@jit
def sgd(p, g, lr):  # pragma: no cover - compiled
    """p -= lr*g over flat arrays."""
    for i in range(p.shape[0]):
        p[i] -= g[i] * lr

@jit
def gemm_call(gemm, ta, tb, A, B, C):  # pragma: no cover - compiled
    """C = op(A) @ op(B) for C-contiguous A, B, C; op transposes when ta / tb is set."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    one, zero = C.dtype.type(1), C.dtype.type(0)
    gemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, M, N, K, one, A.ctypes.data,
         A.shape[1], B.ctypes.data, B.shape[1], zero, C.ctypes.data, N)

@jit
def gemm_repeat(gemm, ta, tb, A, B, C, calls):  # pragma: no cover - compiled
    """gemm_call `calls` times (benchmarks time BLAS alone this way, without Python in the loop)."""
    for _ in range(calls):
        gemm_call(gemm, ta, tb, A, B, C)

@jit
def train_epoch(X, Y, lab, order, xs, ys, ls, params, grads, layout, acts, dacts, z, p, work,
                act, out_kind, batch, l2, opt, hyper, m1, m2, t, gemm):  # pragma: no cover - compiled
    """One epoch of mini-batch training over rows `order` of X; returns (summed loss, optimizer step count).

    Layer i's weights are params[off:off + (fan_in + 1) * fan_out] as a (fan_in + 1, fan_out)
    block whose last row is the bias, with layout[i] = (fan_in, fan_out, off, act_off) and
    act_off its output's offset in acts / dacts (hidden layers). Targets: class indices `lab`
    (softmax, when not empty) or rows of Y. xs / ys / ls are the chunk buffers.
    Optimizer opt 0: Adam (hyper = lr, beta1, beta2, eps; m1, m2 = n, u as in optim.Adam),
    1: SGD (hyper = lr, momentum; m1 = w as in optim.SGD).
    """
    dt = params.dtype.type
    one, zero = dt(1), dt(0)
    nl = layout.shape[0]
    d, k = X.shape[1], z.shape[1]
    chunk, n_total = xs.shape[0], order.shape[0]
    l2t = dt(l2)
    total = 0.0
    for c0 in range(0, n_total, chunk):
        c1 = min(c0 + chunk, n_total)
        if lab.shape[0]:
            gather_labels(X, lab, order[c0:c1], xs, ls)
        else:
            gather_rows(X, Y, order[c0:c1], xs, ys)
        for s in range(0, c1 - c0, batch):
            e = min(s + batch, c1 - c0)
            nb = e - s
            inv_n = dt(1.0 / nb)
            x_ptr = xs[s:e].ctypes.data
            # Forward.
            a_ptr = x_ptr
            for i in range(nl - 1):
                fin, fout, off, aoff = layout[i, 0], layout[i, 1], layout[i, 2], layout[i, 3]
                h = acts[aoff:aoff + nb * fout].reshape(nb, fout)
                gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nb, fout, fin, one, a_ptr, fin, params[off:].ctypes.data,
                     fout, zero, h.ctypes.data, fout)
                bias_act(h, params[off + fin * fout:off + (fin + 1) * fout], act)
                a_ptr = h.ctypes.data
            fin, fout, off = layout[nl - 1, 0], layout[nl - 1, 1], layout[nl - 1, 2]
            zb, pb = z[:nb], p[:nb]
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nb, fout, fin, one, a_ptr, fin, params[off:].ctypes.data,
                 fout, zero, zb.ctypes.data, fout)
            bias = params[off + fin * fout:off + (fin + 1) * fout]
            gb = grads[off + fin * fout:off + (fin + 1) * fout]
            if out_kind == 0:
                loss = softmax_xent(zb, bias, ys[s:e], ls[s:e] if lab.shape[0] else ls[:0], pb, gb,
                                    work[:(k + 3) * nb].reshape(k + 3, nb), inv_n)
            else:
                loss = output(zb, bias, ys[s:e], pb, gb, inv_n, out_kind)
            total += loss
            # Backward: dz (mean-loss gradient w.r.t. this layer's output) starts as pb.
            dz_ptr = pb.ctypes.data
            for i in range(nl - 1, -1, -1):
                fin, fout, off = layout[i, 0], layout[i, 1], layout[i, 2]
                ain_ptr = x_ptr if i == 0 else acts[layout[i - 1, 3]:].ctypes.data
                gemm(ROW_MAJOR, TRANS, NO_TRANS, fin, fout, nb, one, ain_ptr, fin, dz_ptr, fout,
                     zero, grads[off:].ctypes.data, fout)  # weight gradient: a_in.T @ dz
                if l2t != zero:
                    for j in range(off, off + fin * fout):
                        grads[j] += params[j] * l2t
                if i:
                    pin, pout, poff, paoff = layout[i - 1, 0], layout[i - 1, 1], layout[i - 1, 2], layout[i - 1, 3]
                    da = dacts[paoff:paoff + nb * fin].reshape(nb, fin)
                    gemm(ROW_MAJOR, NO_TRANS, TRANS, nb, fin, fout, one, dz_ptr, fout, params[off:].ctypes.data,
                         fout, zero, da.ctypes.data, fin)  # delta to the previous layer: dz @ W.T
                    act_back(da, acts[paoff:paoff + nb * fin].reshape(nb, fin),
                             grads[poff + pin * pout:poff + (pin + 1) * pout], act)
                    dz_ptr = da.ctypes.data
            # Update.
            t += 1
            if opt == 0:
                lr, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
                a_t = lr * (1.0 - b1) / (1.0 - b1 ** float(t))
                c_t = math.sqrt((1.0 - b2) / (1.0 - b2 ** float(t)))
                adam(params, grads, m1, m2, dt(b1), dt(b2), dt(c_t / a_t), dt(eps / a_t))
            elif m1.shape[0]:
                sgd_momentum(params, grads, m1, dt(hyper[1]), dt(hyper[0]))
            else:
                sgd(params, grads, dt(hyper[0]))
    return total, t


def _checked_gemm() -> dict[str, Any]:
    """NumPy's own BLAS gemm per dtype name, each checked against np.matmul (all four transpose combinations)."""
    try:
        pointers = _gemm_pointers()
    except (OSError, ValueError, TypeError):
        return {}
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


GEMM = _checked_gemm()  # {} when NumPy's BLAS was not found: mlp.load_engine() then uses the xp path
