"""The memory tests use the select / extract tests' tiny checkpoints and the profile tests' documents."""

from tests.extract.conftest import tiny  # noqa: F401
from tests.profile.conftest import calib_docs  # noqa: F401
