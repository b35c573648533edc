"""PyTorch -> IR through ONNX in memory, so there is one import path to test.

A `.pt2` file (torch.export.save of an ExportedProgram) carries its graph and is exported to ONNX;
`torch.export.load` would unpickle parts of it and run text from it as code, so the archive is first
checked and rebuilt by `pt2_archive`, and torch only ever reads the checked copy. A plain checkpoint
(`.pt`/`.pth`/`.ckpt`) is loaded with weights_only=True: pickled Python objects are refused, never run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph


def load_torch(
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    batch_axes: dict[str, int] | None = None,
) -> Graph:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix == ".pt2":
        return _from_exported_program(p, input_shapes, batch_axes)
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


def _from_exported_program(
    p: Path, input_shapes: dict[str, list[int]] | None, batch_axes: dict[str, int] | None = None
) -> Graph:
    from snnconvert.frontends.pt2_archive import checked_archive, weights_only_loads

    archive = checked_archive(p)  # refuses pickles and code before torch reads a byte
    try:
        with _quiet(), weights_only_loads():
            ep = torch.export.load(archive)
    except Exception as e:
        raise InputError(f"{p}: cannot load the exported program ({_first_line(e)})") from None
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

    return import_model(model_proto, input_shapes, source=str(p), batch_axes=batch_axes)


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e).strip() else type(e).__name__
    return text[:160]


class _quiet:
    """torch logs warnings (with tracebacks) while loading and exporting; the CLI speaks in one line."""

    def __enter__(self) -> None:
        import logging
        import warnings

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.disable(logging.NOTSET)
        self._warnings.__exit__(*exc)
