"""Recipes: one YAML per published method, data only (a pass list and settings), validated against
the pass registry's schemas before anything runs. Errors give the field path."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from snnconvert.errors import InputError
from snnconvert.passes.registry import PASSES, Param

TOP_KEYS = {
    "name": str,
    "description": str,
    "paper": str,
    "coding": str,
    "timesteps": int,
    "passes": list,
    "simulate": dict,
    "energy": dict,
}
SIM_KEYS = {"analog": (str, ("mean", "step"))}
ENERGY_KEYS = {"mac_pj": (int, float), "ac_pj": (int, float)}


@dataclass
class Recipe:
    name: str
    passes: list[tuple[str, dict[str, Any]]]
    coding: str = "rate"
    timesteps: int = 50
    description: str = ""
    paper: str = ""
    simulate: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "coding": self.coding,
            "timesteps": self.timesteps,
            "passes": [{n: p} for n, p in self.passes],
            "simulate": self.simulate,
            "energy": self.energy,
        }


def builtin_recipes() -> dict[str, Path]:
    d = resources.files("snnconvert") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in d.iterdir() if str(p).endswith(".yaml")}


def load_recipe(name_or_path: str, overrides: Sequence[str] = ()) -> Recipe:
    """A built-in recipe by name, or a YAML file path, with `--set KEY=VALUE` overrides applied."""
    builtin = builtin_recipes()
    if name_or_path in builtin:
        path = builtin[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise InputError(
                f"recipe '{name_or_path}' is neither a built-in ({', '.join(sorted(builtin))}) nor an existing file"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a recipe (not a UTF-8 text file)") from None
    recipe = parse_recipe(data, str(path))  # the file's own errors first, named as the file's
    if not overrides:
        return recipe
    return parse_recipe(apply_overrides(data, overrides, str(path)), f"{path} with --set")


# Top-level fields `--set` may change; the pass list is the recipe's structure, not a setting.
SETTABLE_TOP = tuple(k for k in TOP_KEYS if k not in ("passes", "simulate", "energy"))


def _settable_keys(data: dict[str, Any]) -> list[str]:
    """Every key `--set` accepts on this recipe, for the error that lists them."""
    keys = [*SETTABLE_TOP, *(f"simulate.{k}" for k in SIM_KEYS), *(f"energy.{k}" for k in ENERGY_KEYS)]
    for pname, _ in _pass_entries(data):
        keys += [f"{pname}.{k}" for k in PASSES[pname].params]
    return keys


def _pass_entries(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(e.items())) for e in data["passes"]]


def _resolve(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The mapping and field a `--set` key names: a top-level field, simulate.X / energy.X, PASS.PARAM,
    or a bare PARAM that exactly one of the recipe's passes has."""
    name = data["name"]
    entries = _pass_entries(data)
    head, dot, tail = key.partition(".")
    if dot and head in ("simulate", "energy"):
        return data.setdefault(head, {}), tail
    if dot:
        at = [i for i, (pname, _) in enumerate(entries) if pname == head]
        if not at:
            raise InputError(
                f"--set {key}: recipe '{name}' has no pass '{head}' (its passes: "
                f"{', '.join(p for p, _ in entries)})"
            )
        if len(at) > 1:
            raise InputError(f"--set {key}: recipe '{name}' runs pass '{head}' {len(at)} times; write a YAML")
        schema = PASSES[head].params
        if tail not in schema:
            raise InputError(
                f"--set {key}: pass '{head}' has no parameter '{tail}' (its parameters: "
                f"{', '.join(sorted(schema)) or 'none'})"
            )
        return entries[at[0]][1], tail
    found: list[tuple[str, dict[str, Any]]] = [("", data)] if key in SETTABLE_TOP else []
    found += [(f"{pname}.{key}", params) for pname, params in entries if key in PASSES[pname].params]
    if len(found) > 1:
        raise InputError(
            f"--set {key}: ambiguous in recipe '{name}'; write one of "
            + ", ".join(where or key for where, _ in found)
        )
    if not found:
        raise InputError(
            f"--set {key}: not a setting of recipe '{name}' (settable: {', '.join(_settable_keys(data))})"
        )
    return found[0][1], key


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str) -> dict[str, Any]:
    """A copy of a recipe's raw mapping with each `KEY=VALUE` applied, VALUE read as a YAML scalar.

    Applied to the mapping, not to a parsed Recipe, so that parse_recipe's checks (types, ranges,
    choices, codings) judge an overridden value exactly as they judge one written in a YAML; each
    override is checked as it is applied, so the error names the `--set` that broke the recipe.
    """
    out = copy.deepcopy(data)
    # every pass as {name: {params}}, so that a parameter can be added to a pass written bare
    out["passes"] = [
        {e: {}} if isinstance(e, str) else {k: dict(v or {}) for k, v in e.items()} for e in out["passes"]
    ]
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(
                f"--set {item!r}: expected KEY=VALUE (for example timesteps=16 or spike_all.levels=8)"
            )
        if key == "passes":
            raise InputError("--set passes: the pass list is not a setting; write a recipe YAML to change it")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise InputError(
                f"--set {key}: value {raw!r} is not valid YAML ({str(e).splitlines()[0]})"
            ) from None
        target, fld = _resolve(out, key)
        target[fld] = value
        parse_recipe(out, f"{source} with --set {key}={raw}")
    return out


def _type_name(k) -> str:
    return " or ".join(t.__name__ for t in k) if isinstance(k, tuple) else k.__name__


def _check(value: Any, kind, where: str) -> None:
    ok = isinstance(value, kind) and not (
        isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    )
    if not ok:
        raise InputError(f"{where}: expected {_type_name(kind)}, got {type(value).__name__} {value!r}")


def _check_param(p: Param, value: Any, where: str) -> None:
    _check(value, p.kind, where)
    if p.choices is not None and value not in p.choices:
        raise InputError(f"{where}: must be one of {list(p.choices)}, got {value!r}")
    if p.lo is not None and value < p.lo or p.hi is not None and value > p.hi:
        raise InputError(f"{where}: must be in [{p.lo}, {p.hi}], got {value!r}")


def parse_recipe(data: Any, source: str) -> Recipe:
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe is a mapping with keys {sorted(TOP_KEYS)}")
    for k in data:
        if k not in TOP_KEYS:
            raise InputError(f"{source}: unknown field '{k}' (known: {', '.join(sorted(TOP_KEYS))})")
        _check(data[k], TOP_KEYS[k], f"{source}: field '{k}'")
    for k in ("name", "passes"):
        if k not in data:
            raise InputError(f"{source}: field '{k}' is required")
    coding = data.get("coding", "rate")
    if coding not in ("rate", "count"):
        raise InputError(f"{source}: field 'coding' must be 'rate' or 'count', got {coding!r}")
    if data.get("timesteps", 50) <= 0:
        raise InputError(f"{source}: field 'timesteps' must be positive")
    passes = []
    for i, entry in enumerate(data["passes"]):
        where = f"{source}: passes[{i}]"
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise InputError(f"{where}: expected a pass name or a one-key mapping {{name: {{params}}}}")
        ((pname, params),) = entry.items()
        if pname not in PASSES:
            raise InputError(f"{where}: unknown pass '{pname}' (known: {', '.join(sorted(PASSES))})")
        params = params or {}
        if not isinstance(params, dict):
            raise InputError(f"{where}.{pname}: parameters must be a mapping")
        schema = PASSES[pname].params
        for k, v in params.items():
            if k not in schema:
                raise InputError(
                    f"{where}.{pname}.{k}: unknown parameter (known: {', '.join(sorted(schema)) or 'none'})"
                )
            _check_param(schema[k], v, f"{where}.{pname}.{k}")
        if coding not in PASSES[pname].codings:
            raise InputError(
                f"{where}.{pname}: makes {' or '.join(PASSES[pname].codings)}-coded neurons, but the recipe's "
                f"coding is '{coding}' (set field 'coding' to {PASSES[pname].codings[0]})"
            )
        passes.append((pname, dict(params)))
    sim = data.get("simulate", {})
    for k, v in sim.items():
        if k not in SIM_KEYS:
            raise InputError(f"{source}: simulate.{k}: unknown field")
        _check(v, str, f"{source}: simulate.{k}")
        if v not in SIM_KEYS[k][1]:
            raise InputError(f"{source}: simulate.{k}: must be one of {list(SIM_KEYS[k][1])}")
    energy = data.get("energy", {})
    for k, v in energy.items():
        if k not in ENERGY_KEYS:
            raise InputError(f"{source}: energy.{k}: unknown field")
        _check(v, ENERGY_KEYS[k], f"{source}: energy.{k}")
        if v < 0:
            raise InputError(f"{source}: energy.{k}: must be >= 0")
    return Recipe(
        name=data["name"],
        passes=passes,
        coding=coding,
        timesteps=int(data.get("timesteps", 50)),
        description=data.get("description", ""),
        paper=data.get("paper", ""),
        simulate=dict(sim),
        energy=dict(energy),
        source=source,
    )
