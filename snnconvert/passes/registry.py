"""The pass registry: a pass is registered with a parameter schema, so a recipe (plain YAML) can name
it and be validated before anything runs. The passes register themselves when snnconvert.passes is
imported (its __init__ imports every pass module)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snnconvert.ir.graph import Graph


@dataclass
class PassContext:
    """What passes may need beyond the graph: the calibration and the recipe's global settings."""

    calibration: Any = None  # snnconvert.calibrate.file.Calibration
    coding: str = "rate"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Param:
    kind: type | tuple[type, ...]
    default: Any
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class PassDef:
    name: str
    fn: Callable[[Graph, dict[str, Any], PassContext], Graph]
    params: dict[str, Param]
    spikes: tuple[str, ...] = ()  # op types this pass turns into spiking nodes (for `inspect`)
    codings: tuple[str, ...] = ("rate", "count")  # the recipe codings its neurons are made for


PASSES: dict[str, PassDef] = {}


def register_pass(
    name: str,
    params: dict[str, Param] | None = None,
    spikes: tuple[str, ...] = (),
    codings: tuple[str, ...] = ("rate", "count"),
):
    def deco(fn):
        PASSES[name] = PassDef(name, fn, params or {}, spikes, codings)
        return fn

    return deco


def run_pass(name: str, g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    d = PASSES[name]
    full = {k: p.default for k, p in d.params.items()}
    full.update(params)
    return d.fn(g, full, ctx)
