"""Served models: our trainer's estimators (fast path: ndarray in, ndarray out) and any MLflow pyfunc model.

A `ServedModel` knows its identity (registered name, version, the alias it is served as), its input
contract (feature count, names, dtype, whether it accepts missing values) and how to predict. The
protocols turn requests into that contract's arrays; nothing here knows about HTTP.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AidevopsError
from .errors import RequestError

# Open Inference Protocol datatypes of NumPy kinds/sizes.
OIP_DATATYPES = {
    "b1": "BOOL",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}


def oip_datatype(dtype: Any) -> str:
    """OIP datatype name of a NumPy dtype (strings and objects are BYTES)."""
    dt = np.dtype(dtype)
    return OIP_DATATYPES.get(f"{dt.kind}{dt.itemsize}", "BYTES")


@dataclass
class ServedModel:
    """One loaded model version and its input contract; subclasses implement predict."""

    name: str
    version: str
    source: str
    alias: str | None = None
    n_features: int | None = None
    feature_names: list[str] | None = None
    input_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    accepts_missing: bool = False
    task: str | None = None  # "classification" | "regression" | None (unknown: a foreign pyfunc)
    classes: np.ndarray | None = None
    profile: dict | None = None
    metadata: dict = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    smoke: dict = field(default_factory=dict)
    stats: Any = None  # metrics.ModelStats, attached when the model enters a slot set
    kind: str = "aidevops"
    fast: bool = True  # True: requests are parsed straight into a float array (no pandas)

    @property
    def label(self) -> str:
        """`name@alias (vN)` for messages."""
        return f"{self.name} v{self.version}" + (f" (@{self.alias})" if self.alias else "")

    def predict(self, X: Any, params: dict | None = None) -> Any:
        """Predictions for a batch."""
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        """Class probabilities, or None when the model has none."""
        return None

    def input_tensors(self) -> list[dict]:
        """OIP metadata of the input tensor(s)."""
        return [{"name": "input-0", "datatype": oip_datatype(self.input_dtype), "shape": [-1, self.n_features or -1]}]

    def output_tensors(self) -> list[dict]:
        """OIP metadata of the output tensor(s)."""
        return [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]

    def describe(self) -> dict:
        """JSON-able summary for the admin API and logs."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "source": self.source,
            "kind": self.kind,
            "n_features": self.n_features,
            "task": self.task,
            "accepts_missing": self.accepts_missing,
            "loaded_at": self.loaded_at,
            "smoke": self.smoke,
        }


@dataclass
class AidevopsModel(ServedModel):
    """A model file of our trainer: float32 rows in, labels or values out, no pandas anywhere."""

    estimator: Any = None

    @classmethod
    def from_estimator(
        cls, estimator: Any, *, name: str, version: str, source: str, alias: str | None = None
    ) -> AidevopsModel:
        """Wrap a loaded trainer estimator (from trainer.load_model)."""
        metadata = dict(getattr(estimator, "metadata_", None) or {})
        profile = getattr(estimator, "profile_", None)
        n = int(estimator.n_features_in_)
        names = None
        meta_dataset = metadata.get("dataset")
        dataset = meta_dataset if isinstance(meta_dataset, dict) else {}
        for candidate in (
            metadata.get("feature_names"),
            dataset.get("feature_names"),
            [f.get("name") for f in (profile or {}).get("features", [])] if isinstance(profile, dict) else None,
        ):
            if isinstance(candidate, list) and len(candidate) == n and all(isinstance(c, str) for c in candidate):
                names = list(candidate)
                break
        classes = getattr(estimator, "classes_", None)
        task = (
            "classification"
            if getattr(estimator, "_estimator_type", None) == "classifier" or classes is not None
            else "regression"
        )
        dtype = np.dtype(getattr(estimator, "dtype", None) or np.float32)
        return cls(
            name=name,
            version=version,
            source=source,
            alias=alias,
            n_features=n,
            feature_names=names,
            input_dtype=dtype if dtype.kind == "f" else np.dtype(np.float32),
            accepts_missing=bool(metadata.get("accepts_missing", False)),
            task=task,
            classes=None if classes is None else np.asarray(classes),
            profile=profile if isinstance(profile, dict) else None,
            metadata=metadata,
            estimator=estimator,
            kind="aidevops",
            fast=True,
        )

    def __post_init__(self) -> None:
        est = self.estimator
        self._predict = _unchecked(est, "predict") if est is not None else None
        self._proba = _unchecked(est, "predict_proba") if hasattr(est, "predict_proba") else None

    def predict(self, X: Any, params: dict | None = None) -> np.ndarray:
        """Labels (classifiers) or values (regressors) of rows the protocols already checked."""
        if self._predict is None:
            raise RuntimeError(f"model {self.name} v{self.version} was built without an estimator to predict with")
        try:
            return np.asarray(self._predict(X))
        except AidevopsError as exc:  # the trainer's own boundary checks (DataError), after ours passed
            raise RequestError(
                f"The model cannot compute on this input ({exc}); send values closer to the range it was trained on."
            ) from None

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        """Class probabilities (classifiers only)."""
        if self.task != "classification" or self._proba is None:
            return None
        return np.asarray(self._proba(X))

    def output_tensors(self) -> list[dict]:
        """`predict` (labels or values) and, for classifiers, `predict_proba` (n_classes columns)."""
        if self.task == "classification" and self.classes is not None:
            out = [{"name": "predict", "datatype": oip_datatype(self.classes.dtype), "shape": [-1]}]
            if hasattr(self.estimator, "predict_proba"):
                out.append({"name": "predict_proba", "datatype": "FP32", "shape": [-1, int(len(self.classes))]})
            return out
        n_out = int(getattr(self.estimator, "n_outputs_", 1) or 1)
        return [
            {
                "name": "predict",
                "datatype": oip_datatype(self.input_dtype),
                "shape": [-1] if n_out == 1 else [-1, n_out],
            }
        ]


@dataclass
class PyfuncModel(ServedModel):
    """Any other MLflow pyfunc model, served through MLflow's loader and its own input parsing."""

    pyfunc: Any = None
    local_path: str | None = None
    input_schema: Any = None  # mlflow.types.Schema or None
    tensor_input: bool = False  # a single unnamed tensor spec: parse like our fast path
    numeric_columns: list[str] = field(default_factory=list)
    input_example: Any = None
    example_body: dict | None = None  # a one-row /invocations body from MLflow's stored input example
    split_kinds: dict = field(default_factory=dict)  # double/string columns a plain dataframe_split builds directly
    row_wise: bool = False  # its flavor predicts rows independently: concurrent requests may merge (batching.py)

    @classmethod
    def from_pyfunc(
        cls, pyfunc: Any, *, name: str, version: str, source: str, local_path: str | None, alias: str | None = None
    ) -> PyfuncModel:
        """Wrap a loaded mlflow.pyfunc.PyFuncModel, reading its signature for the input contract."""
        meta = pyfunc.metadata
        schema = meta.get_input_schema()
        extra = dict(getattr(meta, "metadata", None) or {})
        model = cls(
            name=name,
            version=version,
            source=source,
            alias=alias,
            pyfunc=pyfunc,
            local_path=local_path,
            input_schema=schema,
            metadata=extra,
            kind="pyfunc",
            fast=False,
            accepts_missing=bool(extra.get("accepts_missing", False)),
        )
        if schema is not None:
            if schema.is_tensor_spec() and len(schema.inputs) == 1 and not schema.has_input_names():
                spec = schema.inputs[0]
                shape = list(spec.shape)
                model.tensor_input = len(shape) == 2
                model.input_dtype = np.dtype(spec.type)
                if model.tensor_input and shape[1] != -1:
                    model.n_features = int(shape[1])
                model.fast = model.tensor_input and model.input_dtype.kind in "fiu"
            elif not schema.is_tensor_spec() and schema.has_input_names():
                model.feature_names = list(schema.input_names())
                model.n_features = len(model.feature_names)
                numeric = {"double", "float", "long", "integer"}
                model.numeric_columns = [
                    c.name for c in schema.inputs if str(getattr(c.type, "name", c.type)) in numeric
                ]
                from .protocols.splitframe import column_kinds  # noqa: PLC0415 - pandas, for foreign models only

                model.split_kinds = column_kinds(schema)
        model.task = _task_of_outputs(meta.get_output_schema())
        from .batching import row_wise  # noqa: PLC0415

        model.row_wise = row_wise(pyfunc)
        from .example import request_example  # noqa: PLC0415

        model.example_body = request_example(local_path)  # read now: a downloaded folder may go with the model
        try:
            if local_path:
                from mlflow.models import Model  # noqa: PLC0415 - only pyfunc models pay for MLflow

                model.input_example = Model.load(local_path).load_input_example(local_path)
        except Exception:  # noqa: BLE001 - an unreadable example only costs the smoke test its input
            model.input_example = None
        return model

    def predict(self, X: Any, params: dict | None = None) -> Any:
        """MLflow's predict: schema enforcement, then the model (called in a worker thread)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            if params:
                return self.pyfunc.predict(X, params=params)
            return self.pyfunc.predict(X)
        except MlflowException as exc:
            raise RequestError(f"The model refused the input: {str(exc.message)[:500]}") from None
        except Exception:  # noqa: BLE001 - as MLflow's server: a model failing on its input is a 400
            raise RequestError(
                "The model failed on this input; verify that the input matches the model's signature."
            ) from None

    def describe(self) -> dict:
        """As ServedModel's, plus the "try it" body from the model's input example (when it has one)."""
        out = super().describe()
        if self.example_body is not None:
            out["example"] = self.example_body
        out["profile"] = self.profile is not None
        return out

    def input_tensors(self) -> list[dict]:
        """One tensor for tensor signatures; one column tensor per named input otherwise."""
        schema = self.input_schema
        if schema is None or self.tensor_input:
            return super().input_tensors()
        if schema.is_tensor_spec():
            return [
                {"name": s.name or f"input-{i}", "datatype": oip_datatype(s.type), "shape": list(s.shape)}
                for i, s in enumerate(schema.inputs)
            ]
        out = []
        for c in schema.inputs:
            try:
                dt = oip_datatype(c.type.to_numpy())
            except Exception:  # noqa: BLE001 - arrays/objects have no NumPy type
                dt = "BYTES"
            out.append({"name": c.name, "datatype": dt, "shape": [-1]})
        return out

    def output_tensors(self) -> list[dict]:
        """From the output signature where there is one."""
        schema = self.pyfunc.metadata.get_output_schema()
        if schema is not None and schema.is_tensor_spec() and len(schema.inputs) == 1:
            spec = schema.inputs[0]
            return [{"name": "predict", "datatype": oip_datatype(spec.type), "shape": list(spec.shape)}]
        return [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]


def _task_of_outputs(schema: Any) -> str | None:
    """What a foreign model predicts, from its one-output signature: labels (integers, strings, booleans) are
    classification, floats regression; None when unsaid. Live quality through /feedback needs it; a
    reference profile's prediction summary, when there is one, says it instead (loader.attach_profile)."""
    try:
        if schema is None or len(schema.inputs) != 1:
            return None
        spec = schema.inputs[0]
        kind = np.dtype(spec.type).kind if schema.is_tensor_spec() else np.dtype(spec.type.to_numpy()).kind
    except Exception:  # noqa: BLE001 - arrays, objects, maps: no single type to read
        return None
    return {
        "i": "classification",
        "u": "classification",
        "b": "classification",
        "U": "classification",
        "O": "classification",
        "f": "regression",
    }.get(kind)


def _unchecked(estimator: Any, method: str) -> Any:
    """`estimator.method`, minus the scaler's repeat of checks the server has made (finite, 2-D, width, dtype).

    `Scaled.predict(X)` is `estimator.predict(scaler_.transform(scaler_.check(X)))`, and `check` returns X
    itself when X is already a finite 2-D array of the model's dtype and width, which the protocols
    guarantee; any other X takes the full method.
    """
    from ..trainer.scaling import Scaled  # noqa: PLC0415

    full = getattr(estimator, method)
    scaler, inner = getattr(estimator, "scaler_", None), getattr(estimator, "estimator", None)
    if not isinstance(estimator, Scaled) or scaler is None or inner is None or not hasattr(inner, method):
        return full
    dtype, width, transform, inner_method = (
        scaler.mean_.dtype,
        int(scaler.n_features_in_),
        scaler.transform,
        getattr(inner, method),
    )

    def run(X: Any) -> Any:
        if isinstance(X, np.ndarray) and X.dtype == dtype and X.ndim == 2 and X.shape[1] == width:
            return inner_method(transform(X))
        return full(X)

    return run


def finite_outputs(values: Any) -> bool:
    """Whether predictions hold no NaN/inf (non-numeric outputs pass)."""
    try:
        a = np.asarray(values)
    except Exception:  # noqa: BLE001
        return True
    if a.dtype.kind in "fc":
        return bool(np.isfinite(a).all())
    if a.dtype.kind == "O":
        return not any(isinstance(v, float) and not math.isfinite(v) for v in a.ravel().tolist())
    return True
