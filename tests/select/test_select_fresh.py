"""Select on a fresh profile (emo_prune.select.fresh): what `extract` without --profile runs whole and the
pipeline runs as two steps. The plan equals profiling to a file and selecting from it by hand; the
temporary profile is gone afterwards; progress reaches the user through emo_prune.events only."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager

from emo_prune import events
from emo_prune.profile.runner import ProfileSettings, profile_to_file
from emo_prune.select import SelectOptions, make_plan
from emo_prune.select.fresh import select_on_fresh_profile

SOURCES = ["builtin:code:calib"]


class Recorder:
    """An events listener that keeps the progress tasks it was asked to draw and the notes."""

    debug = False

    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def warn(self, message: str) -> None:
        self.notes.append(message)

    @contextmanager
    def progress(self):
        recorder = self

        class Bars:
            def add_task(self, description: str, total=None, **fields) -> int:
                recorder.tasks.append(description)
                return len(recorder.tasks) - 1

            def update(self, task_id: int, **fields) -> None:
                pass

            def advance(self, task_id: int, advance: float = 1) -> None:
                pass

        yield Bars()


def test_the_plan_is_the_one_profile_then_select_gives_and_no_profile_stays(tiny, tmp_path, monkeypatch):
    model = tiny("emo")
    settings = ProfileSettings(max_tokens=2000)
    options = SelectOptions(keep="0.25", domains=("code",))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    recorder = Recorder()
    previous = events.listen(recorder)
    try:
        plan = select_on_fresh_profile(model, SOURCES, options, settings)
    finally:
        events.listen(previous)
    assert list(scratch.iterdir()) == []  # the temporary profile went with its folder
    assert recorder.tasks == ["profile"]  # a profile-scored selection is instant: no bar of its own

    profile_to_file(model, SOURCES, tmp_path / "p.safetensors", ["code"], settings)
    by_hand = make_plan(model, options, tmp_path / "p.safetensors")
    assert plan.experts_kept_per_layer == by_hand.experts_kept_per_layer
    assert plan.profile_digest == by_hand.profile_digest and plan.profile_digest is not None
    assert plan.domains == ["code"]
