"""`profile merge`: profile files of one model (one per corpus, process or machine) summed into one file.

The sum itself is `Profile.merge` (store.py), the one way profiles are merged. (A multi-process profiling
run never makes per-rank profiles: runner.py all-reduces the ranks' sums before the one profile exists.)
"""

from __future__ import annotations

from pathlib import Path

from emo_prune.profile.store import PROFILE_FILE, Profile


def merge_profile_files(paths: list[Path], out: Path, *, overwrite: bool = False) -> Profile:
    """Load `paths`, sum them and write the sum to `out` atomically. `out` is refused before anything is
    read when it exists without `overwrite`, or is not a profile."""
    PROFILE_FILE.check_output(out, overwrite)
    profile = Profile.merge([Profile.load(p) for p in paths])
    profile.save(out, overwrite=overwrite)
    return profile
