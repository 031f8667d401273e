"""Delta, drop and retained fraction follow each metric's direction (emo_prune.eval.compare docstring)."""

from __future__ import annotations

import pytest

from emo_prune.errors import EvalError
from emo_prune.eval import MetricScore, ModelEval, TaskScores, compare, compare_metric


@pytest.mark.parametrize(
    ("higher", "value", "baseline", "drop", "retained"),
    [
        (True, 0.60, 0.80, 0.20, 0.75),  # accuracy fell: positive drop, 75% retained
        (True, 0.90, 0.80, -0.10, 1.125),  # accuracy rose: negative drop, > 100% retained
        (False, 5.0, 4.0, 1.0, 0.8),  # bits_per_byte rose (worse): drop = p - b, retained = b / p
        (False, 3.2, 4.0, -0.8, 1.25),  # perplexity fell (better)
        (True, 0.0, 0.0, 0.0, 1.0),  # zero baseline, no worse: retained 1
        (True, -1.0, 0.0, 1.0, 0.0),  # zero baseline, worse: retained 0
        (False, 0.0, 1.0, -1.0, 1.0),  # lower-is-better pruned score of 0: as good as it gets
    ],
)
def test_direction_rules(higher, value, baseline, drop, retained):
    row = compare_metric("t", "m", higher, value, baseline)
    assert row.delta == pytest.approx(value - baseline)
    assert row.drop == pytest.approx(drop)
    assert row.retained == pytest.approx(retained)


def _eval(tasks: dict[str, dict[str, float]]) -> ModelEval:
    scores = {
        t: TaskScores(t, {m: MetricScore(v, 0.01, m != "bits_per_byte") for m, v in metrics.items()})
        for t, metrics in tasks.items()
    }
    return ModelEval(model={"path": "x", "digest": "d"}, settings={}, tasks=scores)


def test_compare_uses_the_primary_metric_unless_named():
    model = _eval({"mc": {"acc": 0.5, "acc_norm": 0.4}, "ppl": {"bits_per_byte": 2.0}})
    base = _eval({"mc": {"acc": 1.0, "acc_norm": 0.8}, "ppl": {"bits_per_byte": 1.5}})
    rows = {r.task: r for r in compare(model, base)}
    assert (rows["mc"].metric, rows["mc"].retained) == ("acc", 0.5)
    assert (rows["ppl"].metric, rows["ppl"].drop, rows["ppl"].retained) == ("bits_per_byte", 0.5, 0.75)
    (named,) = compare(model.subset(["mc"]), base, metrics={"mc": "acc_norm"})
    assert (named.metric, named.value, named.baseline) == ("acc_norm", 0.4, 0.8)
    with pytest.raises(EvalError, match="no metric 'f1'"):
        compare(model, base, metrics={"mc": "f1"})
    with pytest.raises(EvalError, match="baseline was not evaluated on task 'ppl'"):
        compare(model, base.subset(["mc"]))


def test_model_eval_round_trips_through_json():
    original = _eval({"mc": {"acc": 0.5, "acc_norm": 0.4}})
    again = ModelEval.from_dict(original.to_dict())
    assert again == original and list(again.tasks["mc"].metrics) == ["acc", "acc_norm"]
    with pytest.raises(EvalError, match="format"):
        ModelEval.from_dict({**original.to_dict(), "format": 99})
