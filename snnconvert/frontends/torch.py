"""PyTorch -> IR through ONNX in memory, so there is one import path to test.

A `.pt2` file (torch.export.save of an ExportedProgram) carries its graph and is exported to
ONNX. A plain checkpoint (`.pt`/`.pth`/`.ckpt`) is loaded with weights_only=True to say what it
holds: a state_dict has no graph to convert, and pickled Python objects are refused, never run.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph


def load_torch(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix == ".pt2":
        return _from_exported_program(p, input_shapes)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for pickled classes, anything else for corrupt files
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "pickle" in type(e).__name__.lower():
            raise InputError(
                f"{p}: refused: the checkpoint holds pickled Python objects, which could run arbitrary code "
                "(save the model with torch.export.save to a .pt2 file, or export ONNX)"
            ) from None
        raise InputError(f"{p}: not a readable PyTorch checkpoint ({first[:160]})") from None
    kind = "a state_dict" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise InputError(
        f"{p}: holds {kind} of weights without the model's graph; export the model with "
        "torch.export.save(torch.export.export(model, (example,)), 'model.pt2') or torch.onnx.export"
    )


def _from_exported_program(p: Path, input_shapes: dict[str, list[int]] | None) -> Graph:
    if not zipfile.is_zipfile(p):
        raise InputError(f"{p}: not a torch.export archive (.pt2 is a zip file)")
    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        raise InputError(f"{p}: cannot load the exported program ({str(e).splitlines()[0][:160]})") from None
    import logging
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            model_proto = torch.onnx.export(ep, (), dynamo=True, verbose=False).model_proto
    except Exception as e:
        raise InputError(
            f"{p}: exporting the program to ONNX failed ({str(e).splitlines()[0][:160]})"
        ) from None
    finally:
        logging.disable(logging.NOTSET)
    from snnconvert.frontends.onnx import import_model

    return import_model(model_proto, input_shapes, source=str(p))
