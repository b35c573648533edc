"""Shared fixtures for the robustness tests: an in-process CLI runner, the built-in example calibrated
and converted once per session, and the checks every failing command must pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

SAMPLES = 64


def one_line_error(code: int, err: str) -> str:
    """The contract for a failure: non-zero exit, exactly one non-empty stderr line, no traceback."""
    assert code != 0, f"expected a failure, got exit 0 (stderr: {err!r})"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    # a clean error is an SnnConvertError (or a usage error); 'internal error: ...' is a bug
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def leftovers(*paths: Path) -> list[str]:
    """Outputs that a failed command must not leave: the paths themselves and hidden temp siblings."""
    found = []
    for p in paths:
        p = Path(p)
        if p.exists() or p.is_symlink():
            found.append(str(p))
        parent = p.parent
        if parent.is_dir():
            found += [str(q) for q in parent.glob(f".{p.name}.*")]
    return found


def hidden_temps(root: Path) -> list[str]:
    """Temp files/dirs from snnconvert.atomic (.NAME.*.tmp / .NAME.*.old) anywhere under root."""
    return [str(q) for q in Path(root).rglob(".*") if q.name.endswith((".tmp", ".old"))]


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """These tests run many tiny workloads: one intra-op thread is as fast on an idle machine and
    avoids a 10-40x slowdown from thread contention on a busy one (e.g. during `make -j test`)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    """The example written, calibrated and converted once: {'ex', 'model', 'calib_npz', 'test_npz',
    'calib', 'snn'} (the SNN directory is never simulated here, so it has no simulation result)."""
    from snnconvert.api import write_example

    d = tmp_path_factory.mktemp("built")
    write_example(d / "ex")
    env = {
        "dir": d,
        "ex": d / "ex",
        "model": d / "ex" / "model.onnx",
        "calib_npz": d / "ex" / "calib.npz",
        "test_npz": d / "ex" / "test.npz",
        "calib": d / "calib.json",
        "snn": d / "snn",
    }
    code, _, err = run_cli(
        "calibrate", env["model"], "--data", env["calib_npz"], "--samples", SAMPLES, "--out", env["calib"]
    )
    assert code == 0, err
    code, _, err = run_cli(
        "convert", env["model"], "--calibration", env["calib"], "--recipe", "mueller2021", "--out", env["snn"]
    )
    assert code == 0, err
    return env
