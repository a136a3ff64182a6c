"""The OpenAPI 3.0 document of a running server, written for the model it serves.

Request schemas carry the active model's contract (feature count, feature names, number range), so
the document is exact enough for clients and for schemathesis: what it calls valid, the server
accepts; what it calls invalid, the server refuses with a documented 4xx.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import __version__
from .config import ServingConfig
from .models import ServedModel
from .validation import input_limit


def _number(model: ServedModel) -> dict:
    dt = np.dtype(model.input_dtype)
    if dt.kind == "f":
        top = input_limit(dt)
        return {"type": "number", "minimum": -top, "maximum": top}
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    return {"type": "number"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema with these properties, of which `required` (default: all) must be present."""
    return {"type": "object", "required": list(properties) if required is None else required, "properties": properties}


def _json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict, errors: dict[int, str], error_schema: str = "Error") -> dict:
    out = {"200": ok}
    for code, why in errors.items():
        out[str(code)] = {"description": why, "content": _json_content(_ref(error_schema))}
    return out


def _schemas(model: ServedModel) -> dict[str, Any]:
    n = model.n_features
    number = _number(model)
    row: dict[str, Any] = {"type": "array", "items": number, "description": "One row: a value per feature."}
    if n:
        row.update(minItems=n, maxItems=n)
    rows = {"type": "array", "items": _ref("Row"), "minItems": 1, "description": "Rows of features."}
    names = model.feature_names
    if names:
        record = {
            "type": "object",
            "properties": {c: number for c in names},
            "required": list(names),
            "additionalProperties": False,
            "description": "One row as {feature name: value}.",
        }
        columnar = {
            "type": "object",
            "description": "Columns: {feature name: [one value per row]}.",
            "properties": {c: {"type": "array", "items": number, "minItems": 1, "maxItems": 1} for c in names},
            "required": list(names),
            "additionalProperties": False,
        }
    else:
        record = {"type": "object", "additionalProperties": number, "description": "One row as {feature: value}."}
        if n:
            record.update(minProperties=n, maxProperties=n)
        columnar = None
    tensor_forms = [_ref("Rows"), _ref("Row")]
    named = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": _ref("Rows"),
        "description": "One named tensor: {name: rows}.",
    }
    if names:
        named["propertyNames"] = {"not": {"enum": list(names)}}
    tensor_forms.append(named)
    if columnar:
        tensor_forms.append(columnar)
    tensor_forms.append({"type": "array", "items": _ref("Record"), "minItems": 1})
    params = {
        "type": "object",
        "nullable": True,
        "description": "Inference parameters (passed to pyfunc models; ignored by ours).",
    }
    split: dict[str, Any] = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {"data": _ref("Rows")},
        "description": "pandas' split orient; optional 'index' with one label per row.",
    }
    if n:
        split["properties"]["columns"] = {
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "minItems": n,
            "maxItems": n,
            "nullable": True,
        }

    formats = ("inputs", "instances", "dataframe_split", "dataframe_records")

    def envelope(key: str, schema: dict) -> dict:
        # other keys are ignored, as MLflow's server ignores them; but exactly one of the four formats
        others = [{"required": [k]} for k in formats if k != key]
        return {
            "type": "object",
            "required": [key],
            "properties": {key: schema, "params": params},
            "not": {"anyOf": others},
        }

    datatypes = ["FP32", "FP64"] if np.dtype(model.input_dtype).kind == "f" else ["INT64", "INT32"]
    oip_input: dict[str, Any] = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "example": "input-0"},
            "shape": {
                "type": "array",
                "items": {"type": "integer"},
                "enum": [[1, n or 1]],
                "description": "[rows, features]; any number of rows is accepted, one is documented exactly.",
            },
            "datatype": {"type": "string", "enum": datatypes},
            "data": {
                "oneOf": [_ref("Row"), {"type": "array", "items": _ref("Row"), "minItems": 1, "maxItems": 1}],
                "description": "Row-major values, flat or nested to the shape.",
            },
            "parameters": {"type": "object", "nullable": True},
        },
    }
    output_names = [t["name"] for t in model.output_tensors()]
    tensor = _object(
        {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        }
    )
    return {
        "Row": row,
        "Rows": rows,
        "Record": record,
        "MLflowRequest": {
            "oneOf": [
                envelope("inputs", {"oneOf": tensor_forms}),
                envelope("instances", {"oneOf": tensor_forms}),
                envelope("dataframe_split", split),
                envelope("dataframe_records", {"type": "array", "items": _ref("Record"), "minItems": 1}),
            ]
        },
        "MLflowResponse": _object(
            {
                "predictions": {"type": "array", "description": "One prediction per row."},
                "request_id": {"type": "string", "description": "Send it to /feedback with the true label."},
            }
        ),
        "MLflowError": _object({"error_code": {"type": "string"}, "message": {"type": "string"}}),
        "Error": _object({"error": {"type": "string"}}),
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "maxLength": 256, "nullable": True},
                "parameters": {"type": "object", "nullable": True},
                "inputs": {"type": "array", "items": oip_input, "minItems": 1, "maxItems": 1},
                "outputs": {
                    "type": "array",
                    "nullable": True,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "enum": output_names},
                            "parameters": {"type": "object", "nullable": True},
                        },
                    },
                },
            },
        },
        "InferResponse": _object(
            required=["model_name", "outputs"],
            properties={
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "items": {
                        **tensor,
                        "required": ["name", "datatype", "shape", "data"],
                        "properties": {**tensor["properties"], "data": {"type": "array"}},
                    },
                },
            },
        ),
        "ServerMetadata": _object(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor},
                "outputs": {"type": "array", "items": tensor},
            },
        },
        "FeedbackItem": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["request_id", "label"],
                    "additionalProperties": False,
                    "properties": {
                        "request_id": _ref("RequestId"),
                        "label": _ref("Label"),
                        "row": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2**31,
                            "description": "Row of a batch request (default 0).",
                        },
                    },
                },
                {
                    "type": "object",
                    "required": ["request_id", "labels"],
                    "additionalProperties": False,
                    "properties": {
                        "request_id": _ref("RequestId"),
                        "labels": {
                            "type": "array",
                            "items": _ref("Label"),
                            "minItems": 1,
                            "maxItems": 10000,
                            "description": "One label per row of the request.",
                        },
                    },
                },
            ]
        },
        "RequestId": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        "Label": {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": 1000}, {"type": "boolean"}]},
        "SlotsResponse": {"type": "object"},
        "AdminChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model_uri": {"type": "string", "pattern": "^models:/"},
                "share": {"type": "number", "minimum": 0, "maximum": 1},
                "actor": {"type": "string", "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
        },
    }


def _csv_schema(model: ServedModel) -> dict:
    schema: dict[str, Any] = {
        "type": "string",
        "description": "A header row, then one row of numbers per line (UTF-8).",
    }
    n = model.n_features
    if n and np.dtype(model.input_dtype).kind == "f":
        num = r"-?[0-9]{1,6}(\.[0-9]{1,6})?"
        schema["pattern"] = rf"^[a-z]{{1,8}}(,[a-z]{{1,8}}){{{n - 1}}}\n({num}(,{num}){{{n - 1}}}\n){{1,5}}$"
    return schema


def openapi_document(model: ServedModel, config: ServingConfig) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document for a server whose active model is `model`."""
    limit = config.max_body_bytes
    name = model.name
    ok_json = lambda ref, what: {"description": what, "content": _json_content(_ref(ref))}  # noqa: E731
    empty_ok = {
        "description": "Yes (an empty body; the status code is the answer).",
        "content": {"application/json": {}},
    }
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "example": name}
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "example": model.version,
    }
    infer_op = {
        "summary": "Open Inference Protocol inference",
        "description": "The answer's X-Request-ID header is the server's id for the request (send it to /feedback); "
        "the body's `id` echoes the request's `id` when it has one. The binary tensor data extension is "
        "accepted too: an Inference-Header-Content-Length header gives the length of a JSON header, which the "
        "inputs' raw little-endian bytes follow (parameters.binary_data_size on each); outputs asked for with "
        "parameters.binary_data (or the request parameter binary_data_output) come back the same way.",
        "parameters": [name_param],
        "requestBody": {"required": True, "content": _json_content(_ref("InferRequest"))},
        "responses": _responses(
            ok_json("InferResponse", "Outputs"),
            {
                400: "Malformed or invalid input",
                404: "No such model or version",
                413: f"Body over {limit} bytes",
                415: "Not application/json",
            },
        ),
    }
    infer_version_op = {**infer_op, "parameters": [name_param, version_param]}
    model_op = {
        "summary": "Model metadata",
        "parameters": [name_param],
        "responses": _responses(ok_json("ModelMetadata", "Metadata"), {404: "No such model"}),
    }
    ready_op = {
        "summary": "Model readiness",
        "parameters": [name_param],
        "responses": _responses(empty_ok, {404: "No such model or version"}),
    }
    admin_errors = {
        400: "Bad request",
        401: "Missing or wrong token",
        403: "Admin API disabled",
        409: "Does not fit the slots",
        413: "Body too large",
        422: "Version refused (load or smoke test failed)",
    }
    admin_body = {"required": False, "content": _json_content(_ref("AdminChange"))}

    def admin(summary: str) -> dict:
        return {
            "post": {
                "summary": summary,
                "security": [{"adminToken": []}],
                "requestBody": admin_body,
                "responses": _responses(ok_json("SlotsResponse", "The change and the slots"), admin_errors),
            }
        }

    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"aidevops model server: {name}",
            "version": __version__,
            "description": f"Serving {model.label}. MLflow scoring protocol, Open Inference Protocol v2, "
            "Prometheus metrics, ground-truth feedback.",
        },
        "paths": {
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol",
                    "description": "The answer's X-Request-ID header and `request_id` are the server's id for the "
                    "request: send it to /feedback with the true labels.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("MLflowRequest")},
                            "text/csv": {"schema": _csv_schema(model)},
                        },
                    },
                    "responses": _responses(
                        ok_json("MLflowResponse", "Predictions"),
                        {
                            400: "Malformed or invalid input",
                            413: f"Body over {limit} bytes",
                            415: "Not application/json or text/csv (UTF-8)",
                        },
                        "MLflowError",
                    ),
                }
            },
            "/ping": {
                "get": {
                    "summary": "Liveness (MLflow)",
                    "responses": {"200": {"description": "Alive", "content": {"application/json": {}}}},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness (MLflow)",
                    "responses": {"200": {"description": "Alive", "content": {"application/json": {}}}},
                }
            },
            "/version": {
                "get": {
                    "summary": "Server version",
                    "responses": {
                        "200": {"description": "Version", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/v2": {"get": {"summary": "Server metadata", "responses": {"200": ok_json("ServerMetadata", "Metadata")}}},
            "/v2/health/live": {"get": {"summary": "Server liveness", "responses": {"200": empty_ok}}},
            "/v2/health/ready": {"get": {"summary": "Server readiness", "responses": {"200": empty_ok}}},
            "/v2/models/{name}": {"get": model_op},
            "/v2/models/{name}/versions/{version}": {"get": {**model_op, "parameters": [name_param, version_param]}},
            "/v2/models/{name}/ready": {"get": ready_op},
            "/v2/models/{name}/versions/{version}/ready": {
                "get": {**ready_op, "parameters": [name_param, version_param]}
            },
            "/v2/models/{name}/infer": {"post": infer_op},
            "/v2/models/{name}/versions/{version}/infer": {"post": infer_version_op},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/monitor": {
                "get": {
                    "summary": "The live monitor: drift, live quality, request statistics and alerts of the newest window",
                    "parameters": [
                        {
                            "name": "refresh",
                            "in": "query",
                            "required": False,
                            "description": "1: compute a pass now instead of returning the latest",
                            "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The latest monitor pass",
                            "content": _json_content(
                                {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {
                                        "status": {"type": "string"},
                                        "model": {"type": "string"},
                                        "version": {"type": "string"},
                                        "window": {"type": "string"},
                                        "drift": {"type": ["object", "null"]},
                                        "quality": {"type": ["object", "null"]},
                                        "requests": {"type": "object"},
                                        "alerts": {"type": "array"},
                                    },
                                }
                            ),
                        },
                        "400": {
                            "description": "A refresh value other than 0/1/true/false",
                            "content": _json_content(_ref("Error")),
                        },
                        "503": {"description": "The monitor pass failed", "content": _json_content(_ref("Error"))},
                    },
                }
            },
            "/feedback": {
                "post": {
                    "summary": "Ground-truth labels for earlier predictions, by request id",
                    "description": "Needs the deployment's feedback token (`aidevops token NAME`). Labels for a "
                    "request this server did not log and answer, for a row past its end, or for a row already "
                    "labelled (the first label is kept) are refused and counted; none accepted is a 422.",
                    "security": [{"feedbackToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": _json_content(
                            {
                                "oneOf": [
                                    _ref("FeedbackItem"),
                                    {"type": "array", "items": _ref("FeedbackItem"), "minItems": 1, "maxItems": 1000},
                                ]
                            }
                        ),
                    },
                    "responses": _responses(
                        {
                            "description": "Stored",
                            "content": _json_content(
                                _object(
                                    required=["accepted", "refused"],
                                    properties={
                                        "accepted": {"type": "integer"},
                                        "refused": {"type": "integer"},
                                        "refused_reason": {"type": "string"},
                                    },
                                )
                            ),
                        },
                        {
                            400: "Malformed feedback",
                            401: "Missing or wrong feedback token",
                            403: "The server has no feedback token",
                            409: "No request log to store it in",
                            413: "Too large",
                            415: "Not application/json",
                            422: "Every label refused (unknown or expired request, row out of range, already labelled)",
                            503: "Storage unavailable; retry",
                        },
                    ),
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/admin/slots": {
                "get": {
                    "summary": "Slots and history",
                    "security": [{"adminToken": []}],
                    "responses": _responses(
                        ok_json("SlotsResponse", "Slots"), {401: "Missing or wrong token", 403: "Admin API disabled"}
                    ),
                }
            },
            "/admin/switch": admin("Load, smoke-test and switch to a version"),
            "/admin/rollback": admin("Swap active and previous"),
            "/admin/canary": admin("Load, smoke-test and route a share of traffic to a canary"),
            "/admin/canary/share": admin("Change the canary's share"),
            "/admin/canary/promote": admin("Make the canary active"),
            "/admin/canary/clear": admin("Drop the canary"),
            "/admin/shadow": admin("Load, smoke-test and mirror live traffic to a shadow version"),
            "/admin/shadow/clear": admin("Stop mirroring and unload the shadow"),
        },
        "components": {
            "schemas": _schemas(model),
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer"},
                "feedbackToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
