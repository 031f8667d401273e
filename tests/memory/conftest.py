"""The memory tests use the suite's tiny checkpoints (tests/conftest.py) and the profile tests' documents."""

from tests.profile.conftest import calib_docs  # noqa: F401
