"""Select on a fresh profile: profile the model on calibration text, then choose the experts from that profile.

`extract` without --profile runs the whole of it (`select_on_fresh_profile`, the profile in a temporary
file); the pipeline (`emo-prune run`) runs its two halves as separate, resumable steps (one profile kept in
the run folder, then one selection per budget). Progress and notes go through `emo_prune.events`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from emo_prune import events

if TYPE_CHECKING:
    from emo_prune.profile.runner import ProfileSettings
    from emo_prune.select.plan import Plan
    from emo_prune.select.selector import SelectOptions

#: the progress line of a greedy selection outside a pipeline run
GREEDY_LABEL = "greedy selection, layer by layer"


def profile_for_selection(
    model_dir: str | Path,
    sources: list[str],
    path: Path,
    domains: list[str] | None,
    settings: ProfileSettings,
    *,
    overwrite: bool = False,
) -> None:
    """Profile `model_dir` on `sources` (per domain of `domains`, None: every domain found) into `path`."""
    from emo_prune.profile.runner import profile_to_file

    with events.progress() as progress:
        bar = progress.add_task("profile", total=None)
        profile_to_file(
            model_dir,
            sources,
            path,
            domains,
            settings,
            overwrite=overwrite,
            progress=lambda advance, total: progress.update(bar, advance=advance, total=total),
            notify=events.note,
        )


def select_plan(model_dir: str | Path, options: SelectOptions, profile: Path | None, label: str = GREEDY_LABEL) -> Plan:
    """`make_plan`, with a progress bar over the layers for greedy (it runs the model layer by layer, minutes
    per layer on a large one); the other methods score a profile at once and show none."""
    from emo_prune.select.selector import make_plan

    if options.method != "greedy":
        return make_plan(model_dir, options, profile)
    with events.progress() as progress:
        bar = progress.add_task(label, total=None)
        return make_plan(
            model_dir, options, profile, on_layer=lambda layer: progress.update(bar, completed=layer + 1), notify=events.note
        )


def select_on_fresh_profile(model_dir: str | Path, sources: list[str], options: SelectOptions, settings: ProfileSettings) -> Plan:
    """Profile on `sources` (one profile for `options.domains`, or every domain the sources name), select
    from it, and drop it: the plan records the profile's digest, the file is not kept."""
    with tempfile.TemporaryDirectory(prefix="emo-prune-profile-") as tmp:
        path = Path(tmp) / "profile.safetensors"
        profile_for_selection(model_dir, sources, path, list(options.domains) or None, settings)
        return select_plan(model_dir, options, path)
