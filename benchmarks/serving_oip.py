"""1000-row Open Inference Protocol requests to our server as JSON, binary HTTP (the binary tensor data
extension) and gRPC (`--grpc-port`): req/s and rows/s of each, for benchmarks/serving.py.

Two load generators, 8 connections each, alternating by round:
- "client": one asyncio process (uvloop) with a minimal keep-alive HTTP/1.1 client and grpc.aio, sending
  pre-built bodies (the same client cost for all three protocols; it shares the machine with the server);
- "wrk": wrk -t1 -c8 for the two HTTP bodies (gRPC has no wrk).
Every protocol must give the same predictions first, and every run must answer only 200s / OK.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from serving import LUA_POST  # beside this file: wrk's script that posts the file named by WRK_BODY

BINARY_LUA = (
    LUA_POST
    + """wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
local header_length = os.getenv("WRK_HEADER_LENGTH")
if header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
"""
)


def bodies(model: str, rows: np.ndarray) -> dict[str, dict[str, Any]]:
    """The three requests for `rows` (float32, [n, features]): each asks for every output."""
    from aidevops_ext.serving.protocols import grpc_predict_v2 as pb

    shape = list(rows.shape)
    plain = {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP32", "data": rows.ravel().tolist()}]}
    raw = np.ascontiguousarray(rows, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP32", shape=shape)
    request.raw_input_contents.append(raw)
    return {
        "json": {"body": json.dumps(plain).encode(), "type": "application/json", "header_length": ""},
        "binary": {"body": header + raw, "type": "application/octet-stream", "header_length": str(len(header))},
        "grpc": {"body": request.SerializeToString()},
    }


def _http_request(path: str, spec: dict) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {spec['type']}",
        f"Content-Length: {len(spec['body'])}",
    ]
    if spec["header_length"]:
        head.append(f"Inference-Header-Content-Length: {spec['header_length']}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + spec["body"]


async def _http_worker(port: int, request: bytes, stop: float, out: list, bad: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            out.append(time.perf_counter() - t)
            if not head.startswith(b"HTTP/1.1 200"):
                bad.append(head[:40])
    finally:
        writer.close()


async def _grpc_worker(channel: Any, body: bytes, stop: float, out: list) -> None:
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
    while time.perf_counter() < stop:
        t = time.perf_counter()
        await call(body, timeout=60)  # a non-OK status raises: the run fails
        out.append(time.perf_counter() - t)


async def _load(kind: str, port: int, path: str, spec: dict, seconds: float, connections: int) -> dict:
    from grpc import aio

    latencies: list[float] = []
    bad: list = []
    start = time.perf_counter()
    stop = start + seconds
    if kind == "grpc":
        async with aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1)]
        ) as channel:
            await asyncio.gather(*(_grpc_worker(channel, spec["body"], stop, latencies) for _ in range(connections)))
    else:
        request = _http_request(path, spec)
        await asyncio.gather(*(_http_worker(port, request, stop, latencies, bad) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    if bad:
        raise SystemExit(f"{kind}: {len(bad)} answers were not 200 (first: {bad[0]!r})")
    ms = sorted(x * 1000 for x in latencies)
    return {"rps": len(ms) / elapsed, "p50": ms[len(ms) // 2], "p99": ms[int(len(ms) * 0.99)]}


def load(kind: str, port: int, path: str, spec: dict, seconds: float, connections: int = 8) -> dict:
    """req/s, p50 and p99 (ms) of `connections` clients sending `spec` for `seconds`."""
    try:
        import uvloop

        return uvloop.run(_load(kind, port, path, spec, seconds, connections))
    except ImportError:
        return asyncio.run(_load(kind, port, path, spec, seconds, connections))


def answers(http_port: int, grpc_port: int, path: str, specs: dict) -> dict[str, np.ndarray]:
    """The `predict` output each protocol answers (checked equal before any load)."""
    import urllib.request

    import grpc

    from aidevops_ext.serving.protocols import grpc_predict_v2 as pb

    out = {}
    for kind in ("json", "binary"):
        spec = specs[kind]
        headers = {"Content-Type": spec["type"]}
        if spec["header_length"]:
            headers["Inference-Header-Content-Length"] = spec["header_length"]
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=spec["body"], headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            body, n = r.read(), r.headers.get("Inference-Header-Content-Length")
        if n is None:
            out[kind] = np.array(json.loads(body)["outputs"][0]["data"])
        else:
            head = json.loads(body[: int(n)])["outputs"][0]
            dtype = {"INT64": "<i8", "FP32": "<f4", "FP64": "<f8", "INT32": "<i4"}[head["datatype"]]
            out[kind] = np.frombuffer(body[int(n) : int(n) + head["parameters"]["binary_data_size"]], dtype=dtype)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer", response_deserializer=pb.ModelInferResponse.FromString
        )
        response = call(specs["grpc"]["body"], timeout=60)
    dtype = {"INT64": "<i8", "FP32": "<f4", "FP64": "<f8", "INT32": "<i4"}[response.outputs[0].datatype]
    out["grpc"] = np.frombuffer(response.raw_output_contents[0], dtype=dtype)
    return out


def run_wrk_oip(wrk: str, port: int, path: str, spec: dict, scratch: Path, seconds: int, run_wrk: Any) -> dict:
    """wrk on the infer route with `spec`'s body and headers (run_wrk: serving.py's, which parses wrk's output)."""
    import os

    body_file = scratch / f"oip-{spec['type'].split('/')[1]}.body"
    body_file.write_bytes(spec["body"])
    lua = scratch / "oip.lua"
    lua.write_text(BINARY_LUA)
    os.environ["WRK_CONTENT_TYPE"] = spec["type"]
    os.environ["WRK_HEADER_LENGTH"] = spec["header_length"]
    return run_wrk(wrk, port, body_file, lua, seconds, path=path)


def compare(
    *,
    model: str,
    rows: np.ndarray,
    http_port: int,
    grpc_port: int,
    wrk: str,
    scratch: Path,
    seconds: int,
    rounds: int,
    run_wrk: Any,
) -> None:
    """Measure and print the three protocols against a running server of ours (HTTP and gRPC ports)."""
    path = f"/v2/models/{model}/infer"
    specs = bodies(model, rows)
    got = answers(http_port, grpc_port, path, specs)
    assert np.array_equal(got["json"], got["binary"]) and np.array_equal(got["json"], got["grpc"]), (
        "JSON, binary and gRPC disagree on the predictions"
    )
    print(f"JSON, binary HTTP and gRPC answer the same {len(got['json'])} predictions\n", flush=True)
    results: dict[tuple[str, str], list[dict]] = {}
    for rnd in range(rounds):
        order = ["json", "binary", "grpc"] if rnd % 2 == 0 else ["grpc", "binary", "json"]
        for kind in order:
            port = grpc_port if kind == "grpc" else http_port
            runs = [("client", load(kind, port, path, specs[kind], seconds))]
            if kind != "grpc":
                r = run_wrk_oip(wrk, http_port, path, specs[kind], scratch, seconds, run_wrk)
                if r["non2xx"]:
                    raise SystemExit(f"wrk: {r['non2xx']} non-2xx answers to the {kind} body")
                runs.append(("wrk", r))
            for client, r in runs:
                results.setdefault((kind, client), []).append(r)
                print(
                    f"round {rnd + 1} oip {kind:6s} {client:6s} {r['rps']:9.1f} req/s  p50 {r['p50']:8.2f} ms  "
                    f"p99 {r['p99']:8.2f} ms",
                    flush=True,
                )
    n = len(rows)
    sizes = {k: len(v["body"]) for k, v in specs.items()}
    print(
        f"\nOpen Inference Protocol on ours, {n}-row FP32 bodies ({rows.shape[1]} features; request bytes: "
        f"JSON {sizes['json']:,}, binary {sizes['binary']:,}, gRPC {sizes['grpc']:,}), median of {rounds} rounds x "
        f"{seconds} s, 8 connections\n"
    )
    print(f"{'protocol':8s} {'client':7s} {'req/s':>10s} {'rows/s':>12s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for (kind, client), runs in results.items():
        med = {f: statistics.median(r[f] for r in runs) for f in ("rps", "p50", "p99")}
        print(f"{kind:8s} {client:7s} {med['rps']:10.1f} {med['rps'] * n:12.0f} {med['p50']:9.2f} {med['p99']:9.2f}")
