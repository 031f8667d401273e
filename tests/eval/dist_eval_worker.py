"""Entry point of the 2-process gloo eval test (importable by spawned children)."""

from __future__ import annotations

import json
import os


def eval_rank(rank: int, world: int, port: int, model: str, task_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as dist

    from emo_prune.eval import EvalSettings, evaluate_model
    from emo_prune.eval.lm import EmoPruneLM

    seen = []  # the requests this rank scored
    for name in ("loglikelihood", "loglikelihood_rolling"):
        method = getattr(EmoPruneLM, name)
        setattr(
            EmoPruneLM, name, lambda self, requests, *a, _m=method, **k: (seen.extend(requests), _m(self, requests, *a, **k))[1]
        )
    torch.set_num_threads(1)
    settings = EvalSettings(tasks=("t_ppl", "t_mc"), include_paths=(task_dir,), impl="eager", dtype="float32", batch_size=2)
    result = evaluate_model(model, settings)
    scores = {t: {m: s.value for m, s in ts.metrics.items()} for t, ts in result.tasks.items()}
    samples = {t: ts.samples for t, ts in result.tasks.items()}
    with open(f"{out}.{rank}", "w") as f:  # every rank gets rank 0's scores
        json.dump({"scores": scores, "samples": samples, "requests": len(seen)}, f)
    dist.destroy_process_group()
