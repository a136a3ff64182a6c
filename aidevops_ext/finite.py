"""One test for "a real number a metric can hold": shared by the gate, the alert rules and the run views."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np


def is_finite_number(v: Any) -> TypeGuard[float]:
    """True for a finite int or float (NumPy scalars too); False for bools, NaN, infinities and anything else."""
    return (
        not isinstance(v, (bool, np.bool_))
        and isinstance(v, (int, float, np.integer, np.floating))
        and math.isfinite(v)
    )
