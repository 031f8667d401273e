"""Select on a fresh profile: profile the model on calibration text, then choose the experts from that profile.

`extract` without --profile runs the whole of it (`select_on_fresh_profile`, the profile in a temporary
file); the pipeline (`emo-prune run`) runs its two halves (`profile_to_file`, `make_plan`) as separate,
resumable steps. Both halves report their progress and notes through `emo_prune.events` themselves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emo_prune.profile.runner import ProfileSettings
    from emo_prune.select.plan import Plan
    from emo_prune.select.selector import SelectOptions


def select_on_fresh_profile(model_dir: str | Path, sources: list[str], options: SelectOptions, settings: ProfileSettings) -> Plan:
    """Profile on `sources` (one profile for `options.domains`, or every domain the sources name), select
    from it, and drop it: the plan records the profile's digest, the file is not kept."""
    from emo_prune.profile.runner import profile_to_file
    from emo_prune.select.selector import make_plan

    with tempfile.TemporaryDirectory(prefix="emo-prune-profile-") as tmp:
        path = Path(tmp) / "profile.safetensors"
        profile_to_file(model_dir, sources, path, list(options.domains) or None, settings)
        return make_plan(model_dir, options, path)
