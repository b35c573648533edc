"""Under ``python -OO`` (docstrings stripped) every module imports and every command's --help works:
no module reads a docstring as data. Importing the package also leaves ``os.environ`` alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from snnconvert.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]

# Walks the package under -OO itself (so nothing is imported with docstrings present first) and
# imports every module but ``__main__`` (that one runs the CLI); prints what it imported.
IMPORT_ALL = """
import importlib, os, pkgutil, sys
assert sys.flags.optimize == 2, sys.flags.optimize
before = dict(os.environ)
import snnconvert
names = [m.name for m in pkgutil.walk_packages(snnconvert.__path__, "snnconvert.")]
for name in names:
    if name.rsplit(".", 1)[-1] != "__main__":
        importlib.import_module(name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
assert not changed, f"importing the package changed os.environ: {changed}"
from snnconvert.energy.report import CONVENTION_NOTE, CONVENTIONS
from snnconvert.passes import PASSES
assert all(c in CONVENTION_NOTE for c in CONVENTIONS) and PASSES  # data, not docstrings: still there
print(len(names), " ".join(names))
"""


def _run_oo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-OO", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},  # wide enough that no command name wraps
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p.stdout


def test_every_package_module_imports_under_OO():
    out = _ok(_run_oo("-c", IMPORT_ALL))
    count, names = out.split(" ", 1)
    for must in (
        "snnconvert.passes",
        "snnconvert.energy.report",
        "snnconvert.neurons.fewspike",
        "snnconvert.cli",
    ):
        assert must in names.split(), must
    assert int(count) >= 20
    # the offline tools live outside the package
    assert "fit_siexp" not in names and "snnconvert.zoo.train" not in names


def test_help_under_OO():
    out = _ok(_run_oo("-m", "snnconvert", "--help"))
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_help_under_OO(cmd):
    out = _ok(_run_oo("-m", "snnconvert", cmd, "--help"))
    assert "Usage:" in out and cmd in out


@pytest.mark.parametrize("tool", ["tools.fit_siexp", "tools.train_zoo"])
def test_tools_help_under_OO(tool):
    out = _ok(_run_oo("-m", tool, "--help"))
    assert f"python -m {tool}" in out
