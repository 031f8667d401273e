"""Calibration sources: every SOURCE form, determinism, held-out split, and each refused input."""

from __future__ import annotations

import json

import pytest

from emo_prune.calib import SPLITS, Document, describe_sources, load_documents, parse_source, source_digest, split_of
from emo_prune.calib.builtin_math import KINDS
from emo_prune.errors import CalibrationError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_jsonl_json_and_text_tree(tmp_path):
    jsonl = write(tmp_path / "mix.jsonl", '{"text": "a b", "domain": "code"}\n\n{"text": "c"}\n{"text": "   "}\n')
    listing = write(tmp_path / "list.json", json.dumps({"data": [{"text": "x"}, {"text": "y", "domain": "math"}]}))
    write(tmp_path / "tree" / "law" / "b.md", "law text")
    write(tmp_path / "tree" / "bio" / "a.txt", "bio text")
    write(tmp_path / "tree" / "bio" / "skip.bin", "not text")
    docs = load_documents([str(jsonl), str(listing), str(tmp_path / "tree")])
    # blank documents are dropped; missing domains default to the file stem, folders name text files' domains
    assert [(d.text, d.domain) for d in docs] == [
        ("a b", "code"), ("c", "mix"), ("x", "list"), ("y", "math"), ("bio text", "bio"), ("law text", "law"),
    ]  # fmt: skip
    assert {d.source for d in docs} == {str(jsonl), str(listing), str(tmp_path / "tree")}


def test_domain_prefix_and_selection(tmp_path):
    folder = write(tmp_path / "notes" / "a.txt", "hello").parent
    docs = load_documents([f"legal={folder}", "builtin:math"], ["legal"])
    assert [(d.domain, d.text) for d in docs] == [("legal", "hello")]
    with pytest.raises(CalibrationError, match="domain 'code' has no documents"):
        load_documents([str(folder)], ["code"])


def test_builtins_are_deterministic_and_split(tmp_path):
    math = load_documents(["builtin:math"], seed=1)
    assert math == load_documents(["builtin:math"], seed=1)
    assert [d.text for d in math] != [d.text for d in load_documents(["builtin:math"], seed=2)]
    assert len({d.text.split("\n")[0].split()[1] for d in math[: len(KINDS)]}) > 1  # kinds rotate
    assert all(d.domain == "math" and "Answer:" in d.text for d in math)
    parts = {split: load_documents([f"builtin:math:{split}"], seed=1) for split in SPLITS}
    assert sum(len(docs) for docs in parts.values()) == len(math)  # a partition of the corpus
    assert all(split_of(d.text) == split for split, docs in parts.items() for d in docs)
    heldout = parts["heldout"]
    assert all(split_of(d.text) == "heldout" for d in heldout)
    assert 0.05 < len(heldout) / len(math) < 0.15
    assert [d.text for d in load_documents(["builtin:math"], seed=1, split="heldout")] == [d.text for d in heldout]
    code = load_documents(["builtin:code"])
    assert len(code) > 100 and all(d.domain == "code" for d in code)
    assert any("def " in d.text for d in code[:10]) and code == load_documents(["builtin:code"])
    prose = load_documents(["builtin:prose"])
    assert len(prose) > 50 and any("assignment" in d.text.lower() for d in prose)


def test_digests_and_descriptions():
    a = [Document("one", "x", "s1"), Document("two", "x", "s1"), Document("three", "y", "s2")]
    assert source_digest(a) == source_digest(list(a))
    assert source_digest(a) != source_digest([Document("one", "y", "s1"), *a[1:]])  # the domain counts
    assert source_digest([Document("ab", "c", "s")]) != source_digest([Document("a", "bc", "s")])  # no ambiguity
    entries = describe_sources(a)
    assert [(e["source"], e["documents"], e["domains"]) for e in entries] == [("s1", 2, {"x": 2}), ("s2", 1, {"y": 1})]
    assert entries[0]["digest"] == source_digest(a[:2])


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "ok"}\nnot json\n', r"bad\.jsonl:2 is not JSON Lines"),  # a file that is not JSONL
        ('{"text": 5}\n', "field 'text' is missing or not a string"),
        ('["text"]\n', "expected a JSON object"),
        ('{"text": "a", "domain": ""}\n', "field 'domain' must be a non-empty string"),
        ('{"text": "a", "domain": "a/b"}\n', r"domain name 'a/b' is not allowed; a domain is 1-64 ASCII letters"),
        ("\n\n", "holds no non-empty document"),  # empty calibration set
    ],
)
def test_bad_jsonl(tmp_path, content, message):
    with pytest.raises(CalibrationError, match=message):
        load_documents([str(write(tmp_path / "bad.jsonl", content))])


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing.jsonl", "does not exist"),
        ("builtin:poetry", "unknown built-in corpus"),
        ("builtin:math:test", "unknown built-in corpus"),
        ("hf:", "bad Hugging Face source"),
        ("task:", "needs an lm-eval task name"),
        ("task::train", "needs an lm-eval task name"),
        ("task:arc_easy:test", "the test split is for scoring"),
        ("", "empty calibration source"),
    ],
)
def test_bad_sources(source, message):
    with pytest.raises(CalibrationError, match=message):
        load_documents([source])


def test_refusals(tmp_path):
    with pytest.raises(CalibrationError, match="no calibration source"):
        load_documents([])
    with pytest.raises(CalibrationError, match="unsupported calibration file type"):
        load_documents([str(write(tmp_path / "data.csv", "text\nhello"))])
    with pytest.raises(CalibrationError, match="unknown split"):
        load_documents(["builtin:math"], split="test")
    with pytest.raises(CalibrationError, match="no non-empty document"):
        load_documents([str((tmp_path / "empty").mkdir() or tmp_path / "empty")])


def test_hf_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CalibrationError, match="hf:|Hugging Face dataset"):
        load_documents(["hf:nobody/no-such-dataset"])


def test_parse_source_forms():
    assert parse_source("hf:org/name:cfg:validation") == parse_source("hf:org/name:cfg:validation")
    spec = parse_source("code=hf:org/name::test")
    assert (spec.kind, spec.target, spec.domain, spec.config, spec.split) == ("hf", "org/name", "code", None, "test")
    assert parse_source("builtin:code:heldout").split == "heldout"
    assert (parse_source("task:arc_easy").target, parse_source("task:arc_easy").split) == ("arc_easy", "validation")
    assert (parse_source("task:gsm8k:train").target, parse_source("task:gsm8k:train").split) == ("gsm8k", "train")
    assert parse_source("task:my/task.yaml:validation").target == "my/task.yaml"
    assert parse_source("task:a:b").target == "a:b"  # a colon of the name's own, not a split
