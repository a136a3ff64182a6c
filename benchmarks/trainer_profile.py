"""Where one epoch of the compiled trainer engine spends its time: the matrix products vs everything else.

    python benchmarks/trainer_profile.py [--rows 120000] [--rounds 7]

The benchmark's shape (64 -> 256 ReLU -> 10 softmax, Adam, batch 256), one part (BLAS on one
thread), float32. A copy of the engine's one-part loop (kernels.train_part) with a bitmask of
phases to run is compiled here; it calls the engine's own kernels on the engine's own buffers.
Each variant is timed in CPU seconds of the calling thread (other work on the machine costs
wall time, not this thread's CPU time), variants interleaved round by round, best round kept:

- the full epoch through the engine itself (kernels.train_part), and through the copy with
  every phase on (the copy must match it, or the breakdown describes some other loop);
- products only (the five gemm calls per batch, nothing else): the floor's work inside the
  epoch's own loop, data flow and cache state;
- each phase alone, and the full epoch minus each phase (its marginal cost);
- the five products timed as the benchmark's floor times them (same arrays, hot loop);
- with --parts N, the engine split over N threads against benchmarks/trainer.py's floor (wall time);
- the gather with smaller chunks, and with the next chunk's rows prefetched into L2 while the
  current chunk's products run (whether the random reads can be hidden behind them).

The copy trains exactly like the engine (tests/integration/test_trainer_profile.py checks the
weights bit for bit), so its phases are the engine's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from aidevops_ext.trainer import kernels as K  # noqa: E402
from aidevops_ext.trainer.mlp import _Net, _Trainer  # noqa: E402

GATHER, FORWARD_GEMM, BIAS_ACT, SOFTMAX, BACKWARD_GEMM, ACT_BACK, UPDATE, PREFETCH = 1, 2, 4, 8, 16, 32, 64, 128
ALL = 127
PHASES = {  # the gather first: "only" variants include it
    "gather (shuffled rows -> chunk)": GATHER,
    "bias + ReLU": BIAS_ACT,
    "softmax + loss + grad + bias sums": SOFTMAX,
    "ReLU backward + bias sums": ACT_BACK,
    "Adam update": UPDATE,
}


@intrinsic
def prefetch(typingctx, arr, i, j):
    """Hint the cache to fetch arr[i, j]'s line (into L2), without waiting for it."""
    sig = types.void(arr, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1], args[2]], wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, error_model="numpy")
def epoch_phases(
    X, lab, order, xs, ys, ls, params, G, layout, acts, dacts, z, p, work, batch, chunk, hyper, m1, m2, t, gemm, phases
):
    """kernels.train_part for one part (no L2, softmax with class indices, Adam), running only `phases`."""
    dt = params.dtype.type
    zero = dt(0)
    nl = layout.shape[0]
    k = z.shape[2]
    n_total, n_params = order.shape[0], params.shape[0]
    xs, ys, ls, acts, dacts, z, p, work, g = xs[0], ys[0], ls[0], acts[0], dacts[0], z[0], p[0], work[0], G[0]
    lr, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
    total = 0.0
    for c0 in range(0, n_total, chunk):
        c1 = min(c0 + chunk, n_total)
        if phases & GATHER:
            K.gather_part(X, ys, lab, order[c0:c1], batch, 0, 1, xs, ys, ls)
        if phases & PREFETCH:  # the next chunk's rows, while this chunk's products run
            for r in range(c1, min(c1 + chunk, n_total)):
                for c in range(0, X.shape[1], 16):
                    prefetch(X, order[r], c)
        for j in range(-(-(c1 - c0) // batch)):
            rows = min(batch, c1 - c0 - j * batch)
            inv_n = dt(1.0 / rows)
            s = j * batch
            x_ptr = xs[s:].ctypes.data
            a_ptr = x_ptr
            for i in range(nl - 1):
                fin, fout, off, aoff = layout[i, 0], layout[i, 1], layout[i, 2], layout[i, 3]
                h = acts[aoff : aoff + rows * fout].reshape(rows, fout)
                if phases & FORWARD_GEMM:
                    K.gemm_ptr(gemm, False, False, rows, fout, fin, a_ptr, params[off:].ctypes.data, h)
                if phases & BIAS_ACT:
                    K.bias_act(h, params[off + fin * fout : off + (fin + 1) * fout], 0)
                a_ptr = h.ctypes.data
            fin, fout, off = layout[nl - 1, 0], layout[nl - 1, 1], layout[nl - 1, 2]
            zb, pb = z[:rows], p[:rows]
            if phases & FORWARD_GEMM:
                K.gemm_ptr(gemm, False, False, rows, fout, fin, a_ptr, params[off:].ctypes.data, zb)
            if phases & SOFTMAX:
                total += K.softmax_xent(
                    zb,
                    params[off + fin * fout : off + (fin + 1) * fout],
                    ys[s : s + rows],
                    ls[s : s + rows],
                    pb,
                    g[off + fin * fout : off + (fin + 1) * fout],
                    work[: (k + 3) * rows].reshape(k + 3, rows),
                    inv_n,
                )
            dz_ptr = pb.ctypes.data
            for i in range(nl - 1, -1, -1):
                fin, fout, off = layout[i, 0], layout[i, 1], layout[i, 2]
                ain_ptr = x_ptr if i == 0 else acts[layout[i - 1, 3] :].ctypes.data
                if phases & BACKWARD_GEMM:
                    K.gemm_ptr(gemm, True, False, fin, fout, rows, ain_ptr, dz_ptr, g[off:])
                if i:
                    pin, pout, poff, paoff = layout[i - 1, 0], layout[i - 1, 1], layout[i - 1, 2], layout[i - 1, 3]
                    da = dacts[paoff : paoff + rows * fin].reshape(rows, fin)
                    if phases & BACKWARD_GEMM:
                        K.gemm_ptr(gemm, False, True, rows, fin, fout, dz_ptr, params[off:].ctypes.data, da)
                    if phases & ACT_BACK:
                        K.act_back(
                            da,
                            acts[paoff : paoff + rows * fin].reshape(rows, fin),
                            g[poff + pin * pout : poff + (pin + 1) * pout],
                            0,
                        )
                    dz_ptr = da.ctypes.data
            if phases & UPDATE:
                t += 1
                a_t = lr * (1.0 - b1) / (1.0 - b1 ** float(t))
                c_t = math.sqrt((1.0 - b2) / (1.0 - b2 ** float(t)))
                K.update(params, G, m1, m2, 0, n_params, 0, dt(b1), dt(b2), dt(c_t / a_t), dt(eps / a_t), zero, zero)
    return total


ENGINE, COPY = "epoch: the engine (kernels.train_part)", "epoch: the copy, every phase"
IN_LOOP, FLOOR = "the five products in the epoch's loop", "the five products as the floor times them"
PERMUTATION = "fit's row permutation (once per epoch)"


def floor_run(gemm, rng, n, d, hidden, k, batch):
    """The benchmark floor's way: each product alone on fixed arrays (hot in cache), once per batch of an epoch."""
    f32 = np.float32
    X, H, Z = (rng.standard_normal(shape, dtype=f32) for shape in ((batch, d), (batch, hidden), (batch, k)))
    W1, W2 = rng.standard_normal((d, hidden), dtype=f32), rng.standard_normal((hidden, k), dtype=f32)
    dH, gW1, gW2 = np.empty((batch, hidden), f32), np.empty((d, hidden), f32), np.empty((hidden, k), f32)
    products = [  # (transpose a, transpose b, a, b, out), as the engine passes them
        (False, False, X, W1, H),
        (False, False, H, W2, Z),
        (True, False, H, Z, gW2),
        (False, True, Z, W2, dH),
        (True, False, X, dH, gW1),
    ]
    batches = -(-n // batch)

    def run() -> None:
        for ta, tb, a, b, out in products:
            K.gemm_repeat(gemm, ta, tb, a, b, out, batches)

    return run


def report(cpu: dict[str, float], wall: dict[str, float], rounds: int, shape: str) -> None:
    full, floor = cpu[COPY], cpu[FLOOR]
    print(f"one epoch: {shape}; one part, BLAS on one thread")
    print(f"fastest of {rounds} interleaved rounds, in CPU ms of this thread (wall ms), % of the copy's epoch")

    def line(name: str, secs: float) -> None:
        print(f"  {name:<52}{secs * 1e3:8.1f}{secs / full * 100:7.1f} %")

    for name in (ENGINE, COPY, IN_LOOP, FLOOR, PERMUTATION):
        print(f"  {name:<52}{cpu[name] * 1e3:8.1f} ({wall[name] * 1e3:6.1f}){cpu[name] / full * 100:7.1f} %")
    print("each phase: marginal (the full epoch minus the epoch without it)")
    for name in PHASES:
        line(name, full - cpu[f"all but: {name}"])
    line("products: in the loop minus hot", cpu[IN_LOOP] - floor)
    print("each phase alone (after the gather, which is subtracted)")
    gather = cpu["only: " + next(iter(PHASES))]
    for i, name in enumerate(PHASES):
        line(name, cpu[f"only: {name}"] - (gather if i else 0.0))
    print("variants of the gather (each a whole epoch)")
    for name in cpu:
        if name.startswith(("gather chunk", "prefetch")):
            line(name, cpu[name])
    print(
        f"epoch / floor: {cpu[ENGINE] / floor:.3f} (engine), {full / floor:.3f} (copy); "
        f"products in the loop / floor: {cpu[IN_LOOP] / floor:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=120_000)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the fastest of each variant counts")
    ap.add_argument(
        "--parts",
        type=int,
        default=0,
        help="also time the engine split over this many threads against benchmarks/trainer.py's floor, in wall time",
    )
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    n, d, hidden, k, batch = args.rows, 64, 256, 10, 256
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.integers(0, k, n).astype(np.intp)
    Y = np.eye(k, dtype=np.float32)[y]
    net = _Net([d, hidden, k], "relu", "softmax", np, np.float32)
    net.init(rng)
    with threadpool_limits(limits=1, user_api="blas"):
        tr = _Trainer(net, batch, "adam", 1e-3, 0.9, 0.0, exact_shift=False, engine=K, n_rows=n, parts=1)
        start = net.params.copy()
        orders = [rng.permutation(n) for _ in range(3)]

        def engine_epoch() -> None:
            net.params[...] = start
            tr.epoch(X, Y, orders[0], y)

        def variant(phases: int, chunk: int = tr.chunk):
            def run() -> None:
                net.params[...] = start
                tr.m1[:] = 0
                tr.m2[:] = 0
                epoch_phases(
                    X,
                    y,
                    orders[0],
                    tr.xs,
                    tr.ys,
                    tr.ls,
                    net.params,
                    tr.e_grads,
                    tr.layout,
                    tr.e_acts,
                    tr.e_dacts,
                    tr.e_z,
                    tr.e_p,
                    tr.e_work,
                    batch,
                    chunk,
                    tr.hyper,
                    tr.m1,
                    tr.m2,
                    0,
                    tr.gemm,
                    phases,
                )

            return run

        gemm_only = FORWARD_GEMM | BACKWARD_GEMM
        runs = {ENGINE: engine_epoch, COPY: variant(ALL), IN_LOOP: variant(gemm_only)}
        for name, bit in PHASES.items():
            runs[f"only: {name}"] = variant(bit | GATHER)  # gathered rows, so every phase reads real inputs
            runs[f"all but: {name}"] = variant(ALL & ~bit)
        for per in (1, 4):
            runs[f"gather chunk {per} batch(es) instead of {tr.chunk // batch}"] = variant(ALL, per * batch)
        for per in (1, tr.chunk // batch):
            runs[f"prefetch the next chunk's rows, chunk {per} batch(es)"] = variant(ALL | PREFETCH, per * batch)
        runs[PERMUTATION] = lambda: rng.permutation(n)
        runs[FLOOR] = floor_run(tr.gemm, rng, n, d, hidden, k, batch)
        for run in runs.values():  # compile and warm
            run()
        cpu = dict.fromkeys(runs, math.inf)
        wall = dict.fromkeys(runs, math.inf)
        for _ in range(args.rounds):
            for name, run in runs.items():
                w0, c0 = time.perf_counter(), time.thread_time()
                run()
                cpu[name] = min(cpu[name], time.thread_time() - c0)
                wall[name] = min(wall[name], time.perf_counter() - w0)
    report(cpu, wall, args.rounds, f"{n} rows, batch {batch}, {d}->{hidden} relu->{k} softmax, adam, float32")
    if args.parts > 1:
        split_vs_floor(X, Y, y, rng, n, batch, args.parts, args.rounds)
    return 0


def split_vs_floor(X, Y, y, rng, n: int, batch: int, parts: int, rounds: int) -> None:
    """Wall time of the engine's epoch split over `parts` threads vs the benchmark's floor under as many BLAS threads.

    Threads waiting for a core show up in wall time only, so on a busy machine the spread is wide: the
    fastest of each (min / min) is the figure an idle machine approaches.
    """
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from trainer import SETTLE_S, matmul_floor

    d, k = X.shape[1], Y.shape[1]
    net = _Net([d, 256, k], "relu", "softmax", np, np.float32)
    net.init(rng)
    order = rng.permutation(n)
    epochs, floors = [], []
    with threadpool_limits(limits=parts, user_api="blas"):
        tr = _Trainer(net, batch, "adam", 1e-3, 0.9, 0.0, exact_shift=False, engine=K, n_rows=n, parts=parts)
        tr.epoch(X, Y, order, y)
        for _ in range(rounds):
            time.sleep(SETTLE_S)  # BLAS threads from the previous measurement stop spinning
            t0 = time.perf_counter()
            tr.epoch(X, Y, order, y)
            epochs.append(time.perf_counter() - t0)
            time.sleep(SETTLE_S)
            floors.append(matmul_floor(n, d, k, rounds=2, calls=100)[0])
    e, f = np.array(epochs), np.array(floors)
    print(f"split over {tr.parts} parts, wall ms over {rounds} rounds (engine epoch, then the benchmark's floor):")
    print(f"  engine epoch  min {e.min() * 1e3:7.1f}  median {np.median(e) * 1e3:7.1f}")
    print(f"  floor         min {f.min() * 1e3:7.1f}  median {np.median(f) * 1e3:7.1f}")
    print(f"  min / min {e.min() / f.min():.3f}; median of the round pairs {np.median(e / f):.3f}")


if __name__ == "__main__":
    sys.exit(main())
