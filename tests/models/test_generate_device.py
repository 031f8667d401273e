"""`generate --device auto` (offered in its help) resolves as every other command's does
(models.loading.resolve_device: cuda when torch sees one, else cpu), whole and in pool mode."""

from __future__ import annotations

import json

import pytest
import torch

from emo_prune.models.loading import resolve_device


@pytest.mark.parametrize("pool", [[], ["--pool", "0.5"]], ids=["whole", "pools"])
def test_generate_device_auto_runs(cli, tiny, pool):
    result = cli(
        "--json", "generate", tiny("emo"), *pool, "--prompt", "def add(a, b):", "--max-new-tokens", 2, "--device", "auto"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["new_tokens"] <= 2


def test_auto_is_the_device_the_rule_picks(tiny):
    from emo_prune.serve.generate import Generator

    generator = Generator(tiny("emo"), device="auto")
    assert generator.device == resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
