"""Step stamps: skip only when key and output digest match; a failed step leaves no stamp."""

from __future__ import annotations

import pytest

from emo_prune.pipeline.steps import Steps, step_key


def test_skip_rerun_and_failure(tmp_path):
    steps, calls = Steps(tmp_path), []
    target = tmp_path / "out.txt"

    def write(text: str):
        def action():
            calls.append(text)
            target.write_text(text)

        return action

    def boom():
        target.write_text("half")
        raise RuntimeError("killed")

    key = step_key("demo", section="a")
    with pytest.raises(RuntimeError):
        steps.run("demo", key, target, boom)
    assert not (tmp_path / ".steps" / "demo.json").exists()  # a failed step is never stamped
    assert steps.run("demo", key, target, write("one")) is True
    assert steps.run("demo", key, target, write("two")) is False  # up to date: skipped
    target.write_text("edited by hand")
    assert steps.run("demo", key, target, write("three")) is True  # output changed: runs again
    assert steps.run("demo", step_key("demo", section="b"), target, write("four")) is True  # inputs changed
    target.unlink()
    assert steps.run("demo", step_key("demo", section="b"), target, write("five")) is True  # output gone
    assert calls == ["one", "three", "four", "five"]
    assert [r.status for r in steps.results] == ["ran", "skipped", "ran", "ran", "ran"]


def test_keys_depend_on_every_input():
    base = step_key("select", profile="p", selection="s", budget="25pct")
    assert base == step_key("select", budget="25pct", selection="s", profile="p")  # order-free
    assert base != step_key("select", profile="p", selection="s", budget="12.5pct")
    assert base != step_key("extract", profile="p", selection="s", budget="25pct")
