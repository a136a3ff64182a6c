"""What a refusal says: the message of the error a call must raise, for the tests that check its wording."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def refusal(error: type[Exception], call: Callable, *args, **kwargs) -> str:
    """The message of the `error` that `call(*args, **kwargs)` raises (the test fails if it raises none)."""
    with pytest.raises(error) as raised:
        call(*args, **kwargs)
    return str(raised.value)
