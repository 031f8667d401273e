"""Plan validation is linear in the ids a plan lists (before: `ids.count(e)` per id, minutes for 192,000 ids).

Measured by counting comparisons, not by a clock: ids are an int subclass whose `==` counts its calls.
"""

from __future__ import annotations

import json

import pytest
from hardening_helpers import one_line_error, snapshot

from emo_prune.io import Checkpoint
from emo_prune.select import Plan
from emo_prune.select.plan import validate_plan

N = 192_000


class CountedId(int):
    """An expert id that counts `==` calls, and stops a quadratic validation at once instead of after minutes."""

    calls = 0
    budget = 4 * N

    def __eq__(self, other):
        CountedId.calls += 1
        if CountedId.calls > CountedId.budget:
            raise AssertionError(f"more than {CountedId.budget} comparisons: validation is not linear")
        return int.__eq__(self, other)

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    "ids, says",
    [
        ([e % 8 for e in range(N)], "lists expert 0 more than once"),  # every id repeated ~24,000 times
        ([1, 4, 6, 7] * (N // 4), "lists expert 1 more than once"),
    ],
)
def test_validation_does_linear_work(model, ids, says):
    from emo_prune.errors import PlanError

    arch = Checkpoint.open(model).architecture
    counted = [CountedId(e) for e in ids]
    CountedId.calls = 0
    with pytest.raises(PlanError, match=says):
        validate_plan(Plan([counted, [1, 4, 6, 7]]), arch)
    assert CountedId.calls <= 4 * N, CountedId.calls  # quadratic validation made ~N * N / 8 comparisons


def test_validation_of_a_sound_plan_is_linear_too(model):
    arch = Checkpoint.open(model).architecture
    counted = [CountedId(e) for e in (1, 4, 6, 7)]
    CountedId.calls = 0
    assert validate_plan(Plan([counted, [1, 4, 6, 7]]), arch)[0] == [1, 4, 6, 7]
    assert CountedId.calls <= 4 * 8


def test_extract_refuses_a_192000_id_plan_in_one_line(cli, model, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"experts_kept_per_layer": [[e % 8 for e in range(N)], [1, 4, 6, 7]]}))
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan, "--out", tmp_path / "build")
    one_line_error(result, "plan error:", "layer 0 lists expert 0 more than once")
    assert snapshot(tmp_path) == before
