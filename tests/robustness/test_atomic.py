"""Atomic outputs and determinism.

A command that fails half-way (a crash, a full disk) leaves no partial output and no hidden temp
file, and a failed `convert` onto an existing SNN_DIR leaves the old directory as it was. Two runs
of the whole pipeline on the same inputs write identical files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES as BUILT_SAMPLES
from conftest import hidden_temps, leftovers, one_line_error
from helpers import npz

T = 8
SAMPLES = 64


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _tree(d: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under d."""
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _convert_args(env: dict, out: Path) -> list:
    return ["convert", env["model"], "--calibration", env["calib"], "--recipe", "mueller2021", "--out", out]


def _half_then(exc: BaseException):
    """A replacement for export_portable: writes part of the portable directory, then fails."""

    def fake(g, directory):
        d = Path(directory) / "portable"
        d.mkdir(exist_ok=True)
        (d / "snn_step.pt2").write_bytes(b"\0" * 1000)
        raise exc

    return fake


# -- convert ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "exc,clean",
    [(_enospc(), True), (RuntimeError("injected bug"), False)],
    ids=["disk-full", "crash"],
)
def test_convert_failure_mid_write_leaves_nothing(built, cli, tmp_path, monkeypatch, exc, clean):
    import snnconvert.sim.portable as portable

    monkeypatch.setattr(portable, "export_portable", _half_then(exc))
    out = tmp_path / "snn"
    code, _, err = cli(*_convert_args(built, out))
    assert code != 0
    if clean:  # an environment error is a user-facing one-line error naming the output
        line = one_line_error(code, err)
        assert str(out) in line and "No space left" in line and ".tmp" not in line, line
    else:
        assert "Traceback" not in err and err.startswith("internal error"), err
    assert not leftovers(out), leftovers(out)
    assert list(tmp_path.iterdir()) == []


def test_convert_failure_in_savez_leaves_nothing(built, cli, tmp_path, monkeypatch):
    real = np.savez
    calls = []

    def savez(file, *args, **kw):  # the second savez (the ANN's weights) dies half-way
        calls.append(file)
        if len(calls) == 2:
            with open(file, "wb") as f:
                f.write(b"PK\x03\x04 partial")
            raise _enospc()
        return real(file, *args, **kw)

    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "snn"
    code, _, err = cli(*_convert_args(built, out))
    assert str(out) in one_line_error(code, err)
    assert len(calls) == 2
    assert not leftovers(out) and list(tmp_path.iterdir()) == []


def test_failed_convert_keeps_the_old_snn_dir(built, cli, tmp_path, monkeypatch):
    import snnconvert.sim.portable as portable

    out = tmp_path / "snn"
    shutil.copytree(built["snn"], out)
    (out / "user-notes.txt").write_text("mine")
    before = _tree(out)
    monkeypatch.setattr(portable, "export_portable", _half_then(_enospc()))
    code, _, err = cli(*_convert_args(built, out))
    assert str(out) in one_line_error(code, err)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snn"]


def test_failed_final_rename_restores_the_old_snn_dir(built, cli, tmp_path, monkeypatch):
    """The new directory is complete but moving it into place fails: the old one is put back."""
    import snnconvert.atomic as atomic
    import snnconvert.sim.portable as portable

    out = tmp_path / "snn"
    shutil.copytree(built["snn"], out)
    before = _tree(out)
    monkeypatch.setattr(portable, "export_portable", lambda g, d: None)  # fast: not under test
    real = os.replace

    def replace(src, dst):
        if Path(dst) == out and Path(src).name.endswith(".tmp"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    code, _, err = cli(*_convert_args(built, out))
    assert str(out) in one_line_error(code, err)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snn"]


# -- calibrate -------------------------------------------------------------------------------------
def test_calibrate_failure_mid_write_leaves_nothing(built, cli, tmp_path, monkeypatch):
    import snnconvert.atomic as atomic

    real = atomic.write_text

    def write_text(path, text):  # writes half of the JSON into the temp file, then the disk is full
        with atomic.atomic_path(path) as tmp:
            tmp.write_text(text[: len(text) // 2])
            assert tmp.name.startswith(f".{Path(path).name}.")
            raise _enospc()

    monkeypatch.setattr(atomic, "write_text", write_text)
    out = tmp_path / "calib.json"
    code, _, err = cli(
        "calibrate", built["model"], "--data", built["calib_npz"], "--samples", "16", "--out", out
    )
    assert str(out) in one_line_error(code, err)
    assert not leftovers(out) and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(atomic, "write_text", real)


def test_calibrate_onto_existing_file_failure_keeps_it(built, cli, tmp_path, monkeypatch):
    import snnconvert.atomic as atomic

    out = tmp_path / "calib.json"
    out.write_text("old content\n")

    def write_text(path, text):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text(text[:100])
            raise _enospc()

    monkeypatch.setattr(atomic, "write_text", write_text)
    code, _, err = cli(
        "calibrate", built["model"], "--data", built["calib_npz"], "--samples", "16", "--out", out
    )
    one_line_error(code, err)
    assert out.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["calib.json"]


# -- simulate --------------------------------------------------------------------------------------
def test_simulate_out_failure_mid_write_leaves_nothing(built, cli, tmp_path, monkeypatch):
    import snnconvert.atomic as atomic

    snn = tmp_path / "snn"
    shutil.copytree(built["snn"], snn)
    out = tmp_path / "res" / "result.json"
    out.parent.mkdir()
    real = atomic.write_text

    def write_text(path, text):
        if Path(path) != out:
            return real(path, text)
        with atomic.atomic_path(path) as tmp:
            tmp.write_text(text[: len(text) // 3])
            raise _enospc()

    monkeypatch.setattr(atomic, "write_text", write_text)
    code, _, err = cli(
        "simulate", snn, "--data", built["test_npz"], "--timesteps", "2", "--samples", "8", "--out", out
    )
    assert str(out) in one_line_error(code, err)
    assert not leftovers(out) and list(out.parent.iterdir()) == []
    assert not hidden_temps(tmp_path)


def test_simulate_events_failure_leaves_no_temp(built, cli, tmp_path, monkeypatch):
    snn = tmp_path / "snn"
    shutil.copytree(built["snn"], snn)
    for f in ("events.npz", "simulation.json"):
        (snn / f).unlink(missing_ok=True)
    before = _tree(snn)
    real = np.savez

    def savez(file, *args, **kw):
        real(file, *args, **kw)
        raise _enospc()

    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "result.json"
    code, _, err = cli(
        "simulate", snn, "--data", built["test_npz"], "--timesteps", "2", "--samples", "8", "--out", out
    )
    assert "events.npz" in one_line_error(code, err)
    assert not out.exists() and _tree(snn) == before and not hidden_temps(tmp_path)


# -- determinism -----------------------------------------------------------------------------------
def _pipeline(env: dict, d: Path, cli, convert: bool = True) -> None:
    d.mkdir(exist_ok=True)
    steps = [
        (
            "calibrate",
            env["model"],
            "--data",
            env["calib_npz"],
            "--samples",
            SAMPLES,
            "--out",
            d / "calib.json",
        ),
        (
            "convert",
            env["model"],
            "--calibration",
            d / "calib.json",
            "--recipe",
            "mueller2021",
            "--out",
            d / "snn",
        ),
    ]
    if not convert:  # already done by the session fixture, with the same arguments
        steps = []
        shutil.copy(env["calib"], d / "calib.json")
        shutil.copytree(env["snn"], d / "snn")
        for f in ("simulation.json", "events.npz", "energy.json"):
            (d / "snn" / f).unlink(missing_ok=True)
    steps += [
        (
            "simulate",
            d / "snn",
            "--data",
            env["test_npz"],
            "--timesteps",
            T,
            "--samples",
            SAMPLES,
            "--out",
            d / "result.json",
        ),
        ("energy-report", d / "snn", "--out", d / "energy.json", "--csv", d / "energy.csv"),
    ]
    for s in steps:
        code, _, err = cli(*s)
        assert code == 0, (s[0], err)


def test_two_runs_are_identical(built, cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert SAMPLES == BUILT_SAMPLES
    _pipeline(built, a, cli, convert=False)  # run 1: the session's calibrate + convert
    _pipeline(built, b, cli)  # run 2: everything again
    same_bytes = [
        "calib.json",
        "result.json",
        "energy.csv",
        "snn/graph.json",
        "snn/ann/graph.json",
        "snn/summary.json",
        "snn/recipe.json",
        "snn/simulation.json",
        "snn/portable/portable.json",
        "snn/portable/snn_step.pt2",
    ]
    for f in same_bytes:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    for f in ("snn/weights.npz", "snn/ann/weights.npz", "snn/events.npz"):
        wa, wb = npz(a / f), npz(b / f)
        assert list(wa) == list(wb), f
        for k in wa:
            assert wa[k].dtype == wb[k].dtype and wa[k].shape == wb[k].shape, (f, k)
            assert wa[k].tobytes() == wb[k].tobytes(), (f, k)
    for f in ("energy.json", "snn/energy.json"):
        ea, eb = json.loads((a / f).read_text()), json.loads((b / f).read_text())
        assert ea.pop("snn_dir") == str(a / "snn") and eb.pop("snn_dir") == str(b / "snn")
        assert ea == eb, f
    assert not hidden_temps(tmp_path)
