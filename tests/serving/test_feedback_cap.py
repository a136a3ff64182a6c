"""One /feedback body adds at most MAX_FEEDBACK_ROWS labels to deploy.db: a bigger one is refused whole (413)."""

from __future__ import annotations

import orjson
import pytest

from aidevops_ext.serving.app import MAX_FEEDBACK_ROWS, parse_feedback
from aidevops_ext.serving.errors import RequestError


def test_feedback_at_the_row_cap_is_parsed_whole():
    body = orjson.dumps({"request_id": "r", "labels": [0] * MAX_FEEDBACK_ROWS})
    assert len(parse_feedback(body)) == MAX_FEEDBACK_ROWS


def test_feedback_spread_over_many_objects_past_the_row_cap_is_413_in_one_sentence():
    # the probe in issue 15: many objects of a few hundred labels each, under every per-object limit
    per = 500
    body = orjson.dumps([{"request_id": f"r{i}", "labels": [1] * per} for i in range(MAX_FEEDBACK_ROWS // per + 1)])
    with pytest.raises(RequestError) as err:
        parse_feedback(body)
    assert err.value.status == 413
    assert str(MAX_FEEDBACK_ROWS) in err.value.message and err.value.message.count(". ") == 0
