"""PyTorch -> IR through ONNX in memory, so there is one import path to test.

A `.pt2` file (torch.export.save of an ExportedProgram) carries its graph and is exported to ONNX;
`torch.export.load` would unpickle parts of it and run text from it as code, so the archive is first
checked and rebuilt by `pt2_archive`, and torch only ever reads the checked copy. A state_dict
(`.pt`/`.pth`/`.ckpt`, read with weights_only=True: pickled Python objects are refused, never run)
has no graph: `--model-factory` names the user's code that builds its module, which is then
exported through the same ExportedProgram -> ONNX step as a `.pt2`.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph


@dataclass(frozen=True)
class ModelFactory:
    """`--model-factory module:function` and its `--model-kwargs`: the user's own code that builds the
    nn.Module a state_dict belongs to (imported and called: the documented trust boundary)."""

    spec: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def load_torch(
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    batch_axes: dict[str, int] | None = None,
    factory: ModelFactory | None = None,
) -> Graph:
    """A `.pt2` program, or a state_dict with the factory that builds its module, as an IR graph:
    both become an ONNX model in memory and take the same import path as an ONNX file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix == ".pt2":
        if factory is not None:
            raise InputError(f"{p}: a .pt2 archive carries its own graph; drop --model-factory")
        return _from_exported_program(p, input_shapes, batch_axes)
    state = load_state_dict(p)
    if factory is None:
        raise InputError(
            f"{p}: holds a state_dict of weights without the model's graph; pass --model-factory "
            "module:function (your code that builds the model) and --input-shape NAME=N,..., or export ONNX"
        )
    model = build_model(factory)
    fit_state_dict(model, state, p, factory.spec)
    proto = module_to_onnx(model, input_shapes, p)
    from snnconvert.frontends.onnx import import_model

    return import_model(proto, input_shapes, source=str(p), batch_axes=batch_axes)


def load_state_dict(p: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, read with weights_only=True: a pickle that needs code is refused."""
    from snnconvert.frontends.pt2_archive import unpickler_reason, weights_only_loads

    try:
        with weights_only_loads():
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for pickled classes, anything else for corrupt files
        text = str(e)
        if "weights_only" in text or "GLOBAL" in text or "pickle" in type(e).__name__.lower():
            raise InputError(
                f"{p}: refused: the checkpoint holds pickled Python objects, which could run arbitrary code "
                f"({unpickler_reason(e)}); save model.state_dict() and pass --model-factory, or export ONNX"
            ) from None
        raise InputError(f"{p}: not a readable PyTorch checkpoint ({_first_line(e)})") from None
    if isinstance(obj, dict) and not _all_tensors(obj):
        nested = [k for k in ("state_dict", "model_state_dict", "model") if isinstance(obj.get(k), dict)]
        if len(nested) == 1 and _all_tensors(obj[nested[0]]):
            obj = obj[nested[0]]  # a training checkpoint: {"state_dict": ..., "epoch": ...}
    if not isinstance(obj, dict):
        raise InputError(f"{p}: holds a {type(obj).__name__}, not a state_dict (save model.state_dict())")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(
            f"{p}: entry '{str(bad[0])[:80]}' is a {type(obj[bad[0]]).__name__}, not a tensor "
            "(save model.state_dict())"
        )
    return obj


def _all_tensors(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def build_model(factory: ModelFactory) -> torch.nn.Module:
    """Import the factory's module (from the working directory or PYTHONPATH, as `python -c` would)
    and call it; every failure is one line naming the spec."""
    import importlib

    spec = factory.spec
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not fn_name.isidentifier() or not all(x.isidentifier() for x in mod_name.split(".")):
        raise InputError(f"--model-factory '{spec}': expected module:function (e.g. mymodels:build_vit)")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # the console script's sys.path does not hold the working directory
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise InputError(
                f"--model-factory '{spec}': no module '{mod_name}' in the working directory or on PYTHONPATH"
            ) from None
        raise InputError(f"--model-factory '{spec}': importing '{mod_name}' failed ({_exc(e)})") from None
    except Exception as e:
        raise InputError(f"--model-factory '{spec}': importing '{mod_name}' failed ({_exc(e)})") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        where = getattr(module, "__file__", None) or mod_name
        raise InputError(f"--model-factory '{spec}': {where} has no function '{fn_name}'")
    try:
        model = fn(**factory.kwargs)
    except Exception as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in factory.kwargs.items())[:80]
        raise InputError(f"--model-factory '{spec}': {fn_name}({shown}) raised {_exc(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(
            f"--model-factory '{spec}': returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model.eval()


def fit_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], p: Path, spec: str) -> None:
    """load_state_dict(strict=True), with the keys that do not match listed in one line."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = [
            f"{what} {_listed(keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise InputError(f"{p}: does not fit the model from --model-factory '{spec}': {'; '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:  # size mismatch for fc1.weight: ...
        detail = next((ln.strip() for ln in str(e).splitlines() if "mismatch" in ln), _first_line(e))
        raise InputError(
            f"{p}: does not fit the model from --model-factory '{spec}': {detail[:200]}"
        ) from None


def _listed(keys: list[str], n: int = 5) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def module_to_onnx(
    model: torch.nn.Module, input_shapes: dict[str, list[int]] | None, source: Path
) -> onnx.ModelProto:
    """The module as ONNX, its inputs named after forward()'s arguments with N (the samples) a
    dynamic axis. torch.export first: it is the only way a .pt2 becomes ONNX, so a state_dict and a
    .pt2 of one network give one graph; the TorchScript exporter when torch.export cannot trace it."""
    import inspect

    params = [
        q
        for q in inspect.signature(model.forward).parameters.values()
        if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)
    ]
    names = [q.name for q in params]
    shapes = input_shapes or {}
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise InputError(
            f"--input-shape names {', '.join(unknown)}, not an argument of forward({', '.join(names)})"
        )
    required = [q.name for q in params if q.default is q.empty]
    used = [n for n in names if n in shapes]
    if not used or any(n not in shapes for n in required) or used != names[: len(used)]:
        need = [n for n in names if n in required or n in shapes]
        raise InputError(
            "--model-factory: give the shape of each of forward's arguments, in order: "
            + " ".join(f"--input-shape {n}=N,..." for n in need)
            + " (N = the samples' axis)"
        )
    g = torch.Generator().manual_seed(0)
    args = tuple(torch.randn([2 if d == -1 else d for d in shapes[n]], generator=g) for n in used)
    dynamic = {n: shapes[n].index(-1) for n in used if -1 in shapes[n]}
    try:
        with torch.no_grad():
            out = model(*args)
    except Exception as e:
        shown = ", ".join(f"{n}={list(a.shape)}" for n, a in zip(used, args, strict=True))
        raise InputError(f"{source}: the model fails on inputs {shown} ({_exc(e)})") from None
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not outs or not all(isinstance(o, torch.Tensor) for o in outs):
        raise InputError(
            f"{source}: forward() returns a {type(out).__name__}; return a tensor or a tuple of tensors "
            "(e.g. transformers with return_dict=False)"
        )
    out_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    errors = []
    for label, exporter in (("torch.export", _via_torch_export), ("TorchScript exporter", _torchscript_onnx)):
        try:
            with _quiet():
                return exporter(model, args, used, out_names, dynamic)
        except Exception as e:
            errors.append(f"{label}: {_exc(e)}")
    raise InputError(f"{source}: exporting the model to ONNX failed ({'; '.join(errors)[:300]})")


def _torchscript_onnx(model, args, names, out_names, dynamic) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        args,
        buf,
        dynamo=False,
        input_names=names,
        output_names=out_names,
        dynamic_axes={n: {ax: "batch"} for n, ax in dynamic.items()},
        opset_version=17,
    )
    return onnx.load_model_from_string(buf.getvalue())


def _via_torch_export(model, args, names, out_names, dynamic) -> onnx.ModelProto:
    batch = torch.export.Dim("batch")
    shapes = {n: ({dynamic[n]: batch} if n in dynamic else None) for n in names}
    ep = torch.export.export(model, args, dynamic_shapes=shapes)
    return program_to_onnx(ep)


def _exc(e: BaseException) -> str:
    return f"{type(e).__name__}: {_first_line(e)}"


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
    try:
        with _quiet():
            model_proto = program_to_onnx(ep)
    except Exception as e:
        raise InputError(f"{p}: exporting the program to ONNX failed ({_first_line(e)})") from None
    from snnconvert.frontends.onnx import import_model

    return import_model(model_proto, input_shapes, source=str(p), batch_axes=batch_axes)


def program_to_onnx(ep: torch.export.ExportedProgram) -> onnx.ModelProto:
    """The one ExportedProgram -> ONNX step that .pt2 files and state_dicts share, so the same
    network gives the same graph whichever way it came in."""
    return torch.onnx.export(ep, (), dynamo=True, verbose=False).model_proto


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e).strip() else type(e).__name__
    return text[:160]


class _quiet:
    """torch logs warnings (with tracebacks) and prints graphs while loading, tracing and exporting;
    the CLI speaks in one line, so all of that is swallowed here."""

    def __enter__(self) -> None:
        import contextlib
        import logging
        import warnings

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        sink = io.StringIO()
        self._stack.enter_context(contextlib.redirect_stdout(sink))
        self._stack.enter_context(contextlib.redirect_stderr(sink))
        logging.disable(logging.CRITICAL)
        self._stack.callback(logging.disable, logging.NOTSET)

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)
