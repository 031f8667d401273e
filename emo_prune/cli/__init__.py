"""Command-line interface: a thin Typer shell over the library (see emo_prune.cli.app)."""

from emo_prune.cli.app import app, main

__all__ = ["app", "main"]
