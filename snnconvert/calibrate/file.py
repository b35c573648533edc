"""The calibration file: per-tensor sketches tied to one model by its content hash."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnconvert.atomic import write_json
from snnconvert.calibrate.sketch import QuantileSketch
from snnconvert.errors import InputError

FORMAT = "snnconvert-calibration/1"
REPORTED = (99.0, 99.9, 99.99, 99.999, 100.0)


@dataclass
class Calibration:
    model_hash: str
    sketches: dict[str, QuantileSketch]
    info: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    # per tensor, the entries calibration saw masked (-inf or finfo.min added to scores)
    masked: dict[str, int] = field(default_factory=dict)

    def sketch(self, value: str) -> QuantileSketch:
        try:
            return self.sketches[value]
        except KeyError:
            raise InputError(f"{self.path or 'calibration'}: no statistics for tensor '{value}'") from None

    def to_json(self) -> dict[str, Any]:
        tensors = {}
        for name, s in self.sketches.items():
            tensors[name] = {
                "count": s.count,
                "min": s.min,
                "max": s.max,
                "mean": s.mean,
                "std": s.std,
                "percentiles": {f"{p:g}": float(s.percentile(p)) for p in REPORTED},
                "abs_percentiles": {f"{p:g}": float(s.percentile_abs(p)) for p in REPORTED},
                "sketch": s.to_json(),
            }
            if self.masked.get(name):
                tensors[name]["masked"] = int(self.masked[name])
        return {"format": FORMAT, "model_hash": self.model_hash, **self.info, "tensors": tensors}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())


def load_calibration(path: str | Path, model_hash: str | None = None) -> Calibration:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a calibration file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        j = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(j, dict) or j.get("format") != FORMAT:
        raise InputError(f"{p}: not a calibration file (field 'format' is not '{FORMAT}')")
    if not isinstance(j.get("model_hash"), str):
        raise InputError(f"{p}: field 'model_hash' is missing")
    if model_hash is not None and j["model_hash"] != model_hash:
        raise InputError(
            f"{p}: made for another model (model_hash {j['model_hash']}, this model is {model_hash}); "
            "run `snnconvert calibrate` on this model"
        )
    tensors = j.get("tensors")
    if not isinstance(tensors, dict):
        raise InputError(f"{p}: field 'tensors' is missing or not an object")
    sketches, masked = {}, {}
    for name, t in tensors.items():
        if not isinstance(t, dict) or "sketch" not in t:
            raise InputError(f"{p}: field 'tensors.{name}.sketch' is missing")
        try:
            sketches[name] = QuantileSketch.from_json(t["sketch"])
        except ValueError as e:
            raise InputError(f"{p}: field 'tensors.{name}.sketch': {e}") from None
        m = t.get("masked", 0)
        if not isinstance(m, int) or isinstance(m, bool) or m < 0:
            raise InputError(f"{p}: field 'tensors.{name}.masked' must be a non-negative integer")
        if m:
            masked[name] = m
    info = {k: v for k, v in j.items() if k not in ("format", "model_hash", "tensors")}
    return Calibration(j["model_hash"], sketches, info, str(p), masked)
