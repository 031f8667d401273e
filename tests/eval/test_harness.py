"""lm-eval through our loader gives the scores a plain forward pass gives, and the results carry provenance."""

from __future__ import annotations

import math
import re

import pytest
import torch
from eval_data import MC_DOCS, PPL_DOCS
from transformers import AutoModelForCausalLM, AutoTokenizer

from emo_prune.errors import EvalError, RuntimeSetupError
from emo_prune.eval import EvalSettings, evaluate, evaluate_model
from emo_prune.models.loading import resolve_impl


def _settings(task_dir, tasks=("t_ppl", "t_mc"), **kw) -> EvalSettings:
    return EvalSettings(tasks=tasks, include_paths=(str(task_dir),), impl="eager", dtype="float32", batch_size=2, **kw)


def _logprobs(model, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]


@pytest.fixture(scope="module")
def reference(emo_model):
    """Scores computed directly from the model, the way the lm-eval task definitions say."""
    model = AutoModelForCausalLM.from_pretrained(emo_model, dtype=torch.float32, experts_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(emo_model)
    # rolling loglikelihood of a short document: every token, the first one after the EOS prefix
    lls = [float(_logprobs(model, [tok.eos_token_id, *tok(t)["input_ids"]]).sum()) for t in PPL_DOCS]
    n_bytes = sum(len(t.encode()) for t in PPL_DOCS)
    n_words = sum(len(re.split(r"\s+", t)) for t in PPL_DOCS)
    bpb = -sum(lls) / n_bytes / math.log(2)
    word_ppl = math.exp(-sum(lls) / n_words)
    # multiple choice: loglikelihood of " choice" after the prompt, argmax against the label
    correct = []
    for doc in MC_DOCS:
        context = f"Question: {doc['question']}\nAnswer:"
        ctx = tok(context)["input_ids"]
        scores = []
        for choice in doc["choices"]:
            whole = tok(context + " " + choice)["input_ids"]
            scores.append(float(_logprobs(model, whole)[len(ctx) - 1 :].sum()))
        correct.append(max(range(len(scores)), key=scores.__getitem__) == doc["label"])
    return {"bits_per_byte": bpb, "word_perplexity": word_ppl, "acc": sum(correct) / len(correct)}


def test_scores_equal_a_plain_forward(emo_model, task_dir, reference):
    result = evaluate_model(emo_model, _settings(task_dir))
    ppl, mc = result.tasks["t_ppl"], result.tasks["t_mc"]
    assert ppl.primary == "bits_per_byte" and not ppl.metrics["bits_per_byte"].higher_is_better
    assert ppl.metrics["bits_per_byte"].value == pytest.approx(reference["bits_per_byte"], rel=1e-5)
    assert ppl.metrics["word_perplexity"].value == pytest.approx(reference["word_perplexity"], rel=1e-4)
    assert ppl.metrics["bits_per_byte"].stderr is None  # lm-eval has none for perplexities
    assert mc.metrics["acc"].value == pytest.approx(reference["acc"]) and mc.metrics["acc"].higher_is_better
    n = len(MC_DOCS)
    acc = reference["acc"]
    assert mc.metrics["acc"].stderr == pytest.approx(math.sqrt(acc * (1 - acc) / (n - 1)))  # sample stderr of a mean
    assert ppl.samples == len(PPL_DOCS) and mc.samples == len(MC_DOCS)


def test_baseline_comparison_and_provenance(emo_model, task_dir):
    report = evaluate(emo_model, _settings(task_dir, tasks=("t_mc",), limit=2), baseline_dir=emo_model)
    data = report.to_dict()
    assert data["model"]["model"]["digest"] == data["baseline"]["model"]["digest"]  # shard sha256 identity
    assert len(data["model"]["model"]["shards"]) == 1
    assert data["settings"]["impl"] == "eager" and data["settings"]["limit"] == 2
    assert data["model"]["settings"] == data["baseline"]["settings"]  # identical settings for both
    assert set(data["versions"]) == {"emo_prune", "lm_eval", "transformers", "torch"}
    (row,) = data["comparison"]
    assert (row["task"], row["metric"], row["delta"], row["drop"], row["retained"]) == ("t_mc", "acc", 0.0, 0.0, 1.0)
    assert report.model.tasks["t_mc"].samples == 2
    assert "| t_mc | acc ↑ |" in report.markdown()


def test_unknown_task_names_it_and_lists_the_offline_ones(emo_model, task_dir):
    with pytest.raises(EvalError, match=r"unknown lm-eval task\(s\): no_such_task;.*emo_ppl_code"):
        evaluate_model(emo_model, _settings(task_dir, tasks=("t_mc", "no_such_task")))
    # a real lm-eval task is found; offline, without its dataset in the cache, it is a clear error,
    # before the model loads (eval/taskdata_check.py)
    with pytest.raises(EvalError, match=r"task data not in the Hugging Face cache .* arc_easy \(allenai/ai2_arc\)"):
        evaluate_model(emo_model, _settings(task_dir, tasks=("arc_easy",)))


def test_bad_settings_are_refused_before_loading(task_dir):
    with pytest.raises(EvalError, match="--limit must be > 0"):
        _settings(task_dir, limit=0)
    with pytest.raises(EvalError, match="no tasks"):
        EvalSettings(tasks=())
    with pytest.raises(RuntimeSetupError, match="'nope' is not an experts implementation"):
        resolve_impl("nope", "cpu")
    with pytest.raises(RuntimeSetupError, match="no CUDA device") if not torch.cuda.is_available() else pytest.raises(EvalError):
        EvalSettings(tasks=("t_mc",), device="cuda").resolved()


def test_two_gloo_processes_score_as_one(emo_model, task_dir, tmp_path):
    """Data-parallel eval (torchrun / accelerate launch): lm-eval shards the documents by rank and gathers
    them on rank 0; both ranks end with the one-process scores."""
    import json
    import socket

    import torch.multiprocessing as mp
    from dist_eval_worker import eval_rank

    single = evaluate_model(emo_model, _settings(task_dir))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "scores"
    mp.spawn(eval_rank, args=(2, port, str(emo_model), str(task_dir), str(out)), nprocs=2, join=True)
    ranks = [json.loads(out.with_name(f"scores.{rank}").read_text()) for rank in (0, 1)]
    assert all(0 < r["requests"] < sum(r["requests"] for r in ranks) for r in ranks)  # each scored its share only
    for got in ranks:
        assert got["samples"] == {t: s.samples for t, s in single.tasks.items()}
        for task, scores in single.tasks.items():
            for metric, score in scores.metrics.items():
                assert got["scores"][task][metric] == pytest.approx(score.value, rel=1e-5), (task, metric)
