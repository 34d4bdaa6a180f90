"""What a new user hit (issue 23): checks before the work that name the argument as written,
settings and the command in every output, terminal output, messages, one default protocol."""

import subprocess
import sys

import pytest

from jaxbell.cli import main

_NO_JAX = """
import sys
from jaxbell.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
assert "jax" not in sys.modules, "imported jax"
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["grid", "--bad-option"],
        ["bff", "--bad-option"],
        ["noise", "--bad-option"],
        ["finite", "--bad-option"],
        ["design", "--bad-option"],
        ["reproduce", "--bad-option"],
        ["search", "--bad-option"],
        ["rate-curve", "--bad-option"],
    ],
)
def test_usage_errors_and_version_answer_without_importing_jax(argv):
    res = subprocess.run(
        [sys.executable, "-c", _NO_JAX.format(argv=argv)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
