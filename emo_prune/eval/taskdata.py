"""The data of the offline tasks in `recipes/tasks/data/`, generated from the built-in corpora.

  ppl_code.jsonl, ppl_prose.jsonl, ppl_math.jsonl   {"text"}: documents of the corpus's HELD-OUT split
      (`emo_prune.calib.split_of`), which profiling with `builtin:NAME:train` and training never see;
      each cut to at most MAX_CHARS at a line end, so a tiny model's context holds a few windows.
  math_mc.jsonl   {"question", "choices", "label", "split"}: a held-out `builtin:math` problem; the
      choices are its worked answer and DISTRACTORS copies where the final result (wherever the text
      states it as a result) is replaced by a near miss. "split": "fewshot" for a few TRAIN problems
      that serve as few-shot examples, "test" otherwise.
  answer_code.jsonl, answer_math.jsonl, answer_prose.jsonl   {"context", "answer"[, "split"]}: context ->
      answer pairs from the same HELD-OUT documents, for evaluation with per-request pools (`--pool`):
      code = a function's signature and docstring -> its body; math = the problem ("Question: ...\nAnswer:")
      -> its worked answer; prose = the paragraphs so far -> the next paragraph. Then ANSWER_TRAIN pairs
      cut the same way from the corpus's TRAIN split, "split": "train": the task's training documents,
      which `finetune --calib task:emo_answer_math:train` trains on (as AI2 fine-tunes on a task's train split).
  MANIFEST.json   sha256 per file, the generator version and the Python version: builtin:code and
      builtin:prose come from the running Python's standard library, so only the same Python
      regenerates byte-identical files.

Regenerate with `python -m emo_prune.eval.taskdata [OUT_DIR]` (default: recipes/tasks/data).
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import re
import sys
from pathlib import Path

from emo_prune.calib import load_documents
from emo_prune.calib.pairs import clip, code_answers, math_answers, prose_answers
from emo_prune.io.atomic import atomic_write_text

GENERATOR_VERSION = 3
MAX_CHARS = 1500
PPL_DOCS = {"code": 48, "prose": 48, "math": 96}
MC_TEST, MC_FEWSHOT, DISTRACTORS = 96, 5, 3
ANSWER_DOCS = {"code": 64, "prose": 48, "math": 96}
ANSWER_TRAIN = {"code": 128, "prose": 96, "math": 512}
_FINAL = re.compile(r"The answer is (.*?)\.?$")
_NUMBER = re.compile(r"-?\d+")


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def ppl_records(corpus: str, count: int) -> list[dict]:
    docs = load_documents([f"builtin:{corpus}:heldout"], seed=0)
    return [{"text": clip(d.text, MAX_CHARS)} for d in docs[:count]]


def distractors(answer: str, rng: random.Random, n: int = DISTRACTORS) -> list[str]:
    """`answer` with its final result replaced by n different near misses (where it appears as a result)."""
    final = _FINAL.search(answer)
    number = _NUMBER.search(final.group(1)) if final else None
    if number is None:
        return []
    value = int(number.group())
    # a result is what follows "=", "is", "to" or "gets"; operands elsewhere are left as they are
    where = re.compile(rf"(= |is |to |gets ){re.escape(number.group())}(?!\d)")
    wrong = [value + d for d in (1, -1, 2, -2, 10, -10, 3)] + ([value * 2] if value not in (0, 1) else [])
    out: list[str] = []
    for w in rng.sample(wrong, len(wrong)):
        text = where.sub(lambda m, w=w: f"{m.group(1)}{w}", answer)
        if text != answer and text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


def mc_record(problem: str, rng: random.Random, split: str) -> dict | None:
    question, sep, answer = problem.partition("\nAnswer:")
    if not sep:
        return None
    answer = answer.strip()
    wrong = distractors(answer, rng)
    if len(wrong) < DISTRACTORS:
        return None
    choices = [answer, *wrong]
    rng.shuffle(choices)
    question = question.removeprefix("Question:").strip()
    return {"question": question, "choices": choices, "label": choices.index(answer), "split": split}


def mc_records() -> list[dict]:
    rng = random.Random("emo-prune math_mc 0")
    records = []
    for split, count, part in (("fewshot", MC_FEWSHOT, "train"), ("test", MC_TEST, "heldout")):
        made = 0
        for doc in load_documents([f"builtin:math:{part}"], seed=0):
            record = mc_record(doc.text, rng, split)
            if record is not None:
                records.append(record)
                made += 1
            if made == count:
                break
    return records


def answer_records(corpus: str, count: int, part: str = "heldout") -> list[dict]:
    """The first `count` context -> answer pairs of the corpus's `part` split (train ones say so)."""
    cut = {"code": code_answers, "prose": prose_answers, "math": math_answers}[corpus]
    records = []
    for doc in load_documents([f"builtin:{corpus}:{part}"], seed=0):
        records.extend(cut(doc.text))
        if len(records) >= count:
            break
    return [record if part == "heldout" else {**record, "split": part} for record in records[:count]]


def answer_file(corpus: str) -> list[dict]:
    return answer_records(corpus, ANSWER_DOCS[corpus]) + answer_records(corpus, ANSWER_TRAIN[corpus], "train")


def generate(out_dir: str | Path) -> dict[str, str]:
    """Write every data file and MANIFEST.json into `out_dir`; returns {file: sha256}."""
    out_dir = Path(out_dir)
    files = {f"ppl_{c}.jsonl": _jsonl(ppl_records(c, n)) for c, n in PPL_DOCS.items()}
    files["math_mc.jsonl"] = _jsonl(mc_records())
    files.update({f"answer_{c}.jsonl": _jsonl(answer_file(c)) for c in ANSWER_DOCS})
    digests = {}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
        digests[name] = hashlib.sha256(text.encode()).hexdigest()
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "python": platform.python_version(),
        "files": digests,
        "regenerate": "python -m emo_prune.eval.taskdata",
    }
    atomic_write_text(out_dir / "MANIFEST.json", json.dumps(manifest, indent=2) + "\n")
    return digests


if __name__ == "__main__":
    from emo_prune.eval.tasks import builtin_tasks_dir

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else builtin_tasks_dir() / "data"
    for name, digest in generate(target).items():
        print(f"{target / name}  sha256 {digest[:16]}")
