"""Command-line interface: a thin Typer shell over the library (see emo_prune.cli.app)."""

from emo_prune.process import threads

# First, before the CLI's slow imports: OpenMP's wait policy must be set before torch loads, and the
# machine's load is sampled from here to the command body (threads.decide_wait_policy).
threads.prepare_environment()

from emo_prune.cli.app import app, main  # noqa: E402

__all__ = ["app", "main"]
