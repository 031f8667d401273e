"""Entry point of the 2-process gloo test (importable by spawned children)."""

from __future__ import annotations

import os


def profile_rank(rank: int, world: int, port: int, model: str, calib: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as dist

    from emo_prune.profile.runner import ProfileSettings, profile_to_file

    torch.set_num_threads(1)
    settings = ProfileSettings(seq_len=16, batch_size=3, max_tokens=None, device="cpu", dtype="float32")
    profile = profile_to_file(model, [calib], out, settings=settings)
    assert profile.settings["world_size"] == world
    dist.destroy_process_group()
