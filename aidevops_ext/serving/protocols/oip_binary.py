"""The Open Inference Protocol's binary tensor data extension (Triton, KServe), in and out.

A request or response body is a JSON header followed by raw tensor bytes; the HTTP header
`Inference-Header-Content-Length` gives the JSON header's length. Each tensor carried in binary names its
byte count in `parameters.binary_data_size`, and the tensors follow one another in the order they are
listed. Numbers are little-endian, row-major, without padding; a BYTES tensor is a sequence of elements,
each a 4-byte little-endian length and that many bytes. An output is sent in binary when the request asks
for it with `"parameters": {"binary_data": true}` on the output, or with `binary_data_output: true` in the
request's parameters for every output not saying otherwise (tritonclient sends the latter when it names no
outputs).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from ..errors import RequestError

HEADER = b"inference-header-content-length"
EXTENSION = "binary_tensor_data"
HOW_TO = (
    "send a JSON infer request, or use the binary tensor data extension: the JSON header, then the raw "
    "little-endian tensor bytes, with the header's length in the Inference-Header-Content-Length HTTP header "
    "and each binary input's byte count in its parameters.binary_data_size"
)
_LITTLE = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


def not_a_request(detail: str) -> RequestError:
    """The 400 for a body that is neither a JSON infer request nor a binary one: says how to send either."""
    return RequestError(f"The request body is not a valid infer request ({detail}); {HOW_TO}.")


def split(body: bytes, header_length: int) -> tuple[bytes, memoryview]:
    """(JSON header, the tensor bytes after it) of a binary request whose JSON header is `header_length` bytes."""
    if header_length > len(body):
        raise RequestError(
            f"The Inference-Header-Content-Length header says the JSON header is {header_length} bytes but the body "
            f"has only {len(body)}; send the JSON header's own byte length."
        )
    return body[:header_length], memoryview(body)[header_length:]


def decode_header(header: bytes) -> Any:
    """The JSON header of a binary request."""
    if not header:
        raise not_a_request("the Inference-Header-Content-Length header is 0, so there is no JSON header")
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError:
        raise not_a_request(
            f"its first {len(header)} bytes, the length Inference-Header-Content-Length gives, are not a JSON object"
        ) from None


def binary_size(params: Any, what: str) -> int | None:
    """An input's `binary_data_size` parameter (None: its values are in `data`)."""
    if not isinstance(params, dict) or "binary_data_size" not in params:
        return None
    size = params["binary_data_size"]
    if type(size) is not int or size < 0:
        raise RequestError(f"{what} has a binary_data_size that is not a non-negative integer byte count.")
    return size


class Tensors:
    """Reads the binary inputs one after another from the bytes after the JSON header."""

    __slots__ = ("raw", "offset")

    def __init__(self, raw: memoryview | None) -> None:
        self.raw = raw
        self.offset = 0

    def take(self, size: int, shape: list[int], datatype: str, what: str) -> np.ndarray:
        """The next `size` bytes as an array of `shape` and `datatype`."""
        raw = self.raw
        if raw is None:
            raise RequestError(
                f"{what} has parameters.binary_data_size but the request has no Inference-Header-Content-Length "
                "header; send it with the JSON header's byte length, or send the values in 'data'."
            )
        left = len(raw) - self.offset
        if size > left:
            raise RequestError(
                f"{what} declares {size} bytes of binary data but only {left} remain in the body; "
                "the body is truncated or a binary_data_size is wrong."
            )
        chunk = raw[self.offset : self.offset + size]
        self.offset += size
        count = math.prod(shape)
        if datatype == "BYTES":
            return _bytes_elements(chunk, count, what).reshape(shape)
        dt = np.dtype(_LITTLE[datatype])
        if size != count * dt.itemsize:
            raise RequestError(
                f"{what} has {size} bytes of binary data but shape {shape} of {datatype} needs "
                f"{count * dt.itemsize} ({dt.itemsize} per value); check its datatype and shape."
            )
        A = np.frombuffer(chunk, dtype=dt).reshape(shape)
        # a copy in native order: the body's bytes are read-only and may be unaligned
        return A.astype(dt.newbyteorder("="), copy=True)

    def finish(self) -> None:
        """400 when bytes are left over after the last binary input."""
        if self.raw is not None and self.offset != len(self.raw):
            extra = len(self.raw) - self.offset
            raise RequestError(
                f"The body holds {extra} bytes after the binary inputs their binary_data_size values account for; "
                "check each input's binary_data_size and the Inference-Header-Content-Length header."
            )


def _bytes_elements(chunk: memoryview, count: int, what: str) -> np.ndarray:
    """A BYTES tensor's elements (4-byte little-endian length, then the bytes), as strings."""
    out = np.empty(count, dtype=object)
    pos, end = 0, len(chunk)
    for i in range(count):
        if pos + 4 > end:
            raise RequestError(
                f"{what} ends after {i} of its {count} BYTES elements; each element is a 4-byte length then its bytes."
            )
        (n,) = _LENGTH.unpack_from(chunk, pos)
        pos += 4
        if pos + n > end:
            raise RequestError(
                f"{what} has a BYTES element {i} of {n} bytes that runs past its binary_data_size; "
                "each element is a 4-byte little-endian length then its bytes."
            )
        try:
            out[i] = str(chunk[pos : pos + n], "utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"{what} has BYTES element {i} that is not UTF-8 text; send UTF-8 strings.") from None
        pos += n
    if pos != end:
        raise RequestError(
            f"{what} has {end - pos} bytes after its {count} BYTES elements; its binary_data_size or shape is wrong."
        )
    return out


def wants_binary(parameters: dict | None, outputs: Any) -> tuple[bool, dict[str, bool]]:
    """(the default for outputs, the choice of each requested output) from a request's parameters."""
    default = False
    if parameters and "binary_data_output" in parameters:
        default = parameters["binary_data_output"]
        if type(default) is not bool:
            raise RequestError("The request parameter binary_data_output must be true or false.")
    chosen: dict[str, bool] = {}
    for o in outputs or ():
        params = o.get("parameters") or {}
        if "binary_data" in params:
            if type(params["binary_data"]) is not bool:
                raise RequestError(f"Output {o['name'][:60]!r} has a binary_data parameter that is not true or false.")
            chosen[o["name"]] = params["binary_data"]
    return default, chosen


def tensor_bytes(a: np.ndarray, datatype: str) -> bytes:
    """A tensor's raw bytes as the extension (and gRPC's raw_output_contents) carries them."""
    if datatype == "BYTES":
        parts = []
        for v in a.reshape(-1).tolist():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(a, dtype=np.dtype(_LITTLE[datatype])).tobytes()


def render(body: dict, raw: list[bytes]) -> tuple[bytes, int]:
    """A response body (JSON header, then `raw` in the order of its binary outputs) and the header's length."""
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return header + b"".join(raw), len(header)
