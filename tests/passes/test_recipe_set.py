"""`convert --set KEY=VALUE`: overrides applied to a recipe's raw mapping and judged by parse_recipe's
own checks; unknown, ambiguous and ill-typed keys refused in one line before anything is written."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import run_cli

from snnconvert.errors import InputError
from snnconvert.passes.recipe import apply_overrides, builtin_recipes, load_recipe


def _raw(name: str) -> dict:
    return yaml.safe_load(builtin_recipes()[name].read_text())


def _params(recipe, pass_name: str) -> dict:
    return dict(recipe.passes)[pass_name]


def test_pass_param_top_field_and_bare_param_are_applied() -> None:
    base = load_recipe("mueller2021")
    r = load_recipe("mueller2021", ["relu_to_if.v0=0.25", "timesteps=16", "percentile=99.5"])
    assert _params(r, "relu_to_if")["v0"] == 0.25 != _params(base, "relu_to_if")["v0"]
    assert r.timesteps == 16 != base.timesteps
    assert _params(r, "normalize")["percentile"] == 99.5
    # everything not named keeps the file's value
    assert _params(r, "normalize")["mode"] == _params(base, "normalize")["mode"]
    assert [n for n, _ in r.passes] == [n for n, _ in base.passes]


def test_values_are_read_as_yaml_scalars() -> None:
    r = load_recipe("spikezip_count", ["spike_all.levels=8", "simulate.analog=step", "energy.mac_pj=3.7"])
    assert _params(r, "spike_all")["levels"] == 8 and isinstance(_params(r, "spike_all")["levels"], int)
    assert r.simulate["analog"] == "step"
    assert r.energy["mac_pj"] == 3.7


def test_the_raw_mapping_is_not_mutated() -> None:
    raw = _raw("sit2024")
    before = json.dumps(raw, sort_keys=True)
    apply_overrides(raw, ["relu_to_if.v0=0.1", "timesteps=7"], "sit2024")
    assert json.dumps(raw, sort_keys=True) == before


def test_a_parameter_can_be_added_to_a_pass_written_bare(tmp_path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("name: bare\npasses: [normalize, relu_to_if]\n")
    r = load_recipe(str(p), ["relu_to_if.v0=0.3"])
    assert _params(r, "relu_to_if") == {"v0": 0.3}


def test_ambiguous_bare_key_lists_the_candidates() -> None:
    with pytest.raises(InputError) as e:
        load_recipe("sit2024", ["v0=0.25"])
    msg = str(e.value)
    assert "ambiguous" in msg and "relu_to_if.v0" in msg and "softmax_to_spiking.v0" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("recipe", "item", "needles"),
    [
        ("mueller2021", "foo=1", ["not a setting", "normalize.percentile", "timesteps"]),
        ("mueller2021", "spike_all.levels=8", ["no pass 'spike_all'", "relu_to_if"]),
        ("mueller2021", "normalize.bogus=1", ["no parameter 'bogus'", "percentile"]),
        ("spikezip_count", "levels=abc", ["spike_all.levels", "expected int", "'abc'"]),
        ("spikezip_count", "spike_all.levels=99999", ["spike_all.levels", "must be in"]),
        ("mueller2021", "timesteps=0", ["timesteps", "positive"]),
        ("mueller2021", "timesteps=1.5", ["timesteps", "expected int"]),
        ("mueller2021", "coding=binary", ["coding", "'rate' or 'count'"]),
        ("mueller2021", "simulate.analog=sometimes", ["simulate.analog", "must be one of"]),
        ("mueller2021", "passes=[]", ["pass list is not a setting"]),
        ("mueller2021", "timesteps", ["expected KEY=VALUE"]),
    ],
)
def test_bad_overrides_are_one_line_errors_naming_the_key(recipe: str, item: str, needles: list[str]) -> None:
    with pytest.raises(InputError) as e:
        load_recipe(recipe, [item])
    msg = str(e.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


@pytest.fixture(scope="module")
def mlp_example(tmp_path_factory):
    """The zoo's digits MLP calibrated on 64 samples: the cheapest model every recipe converts."""
    d = tmp_path_factory.mktemp("set")
    assert run_cli("example", d / "ex", "--model", "digits_mlp")[0] == 0
    code, _, err = run_cli(
        "calibrate", d / "ex" / "model.onnx", "--data", d / "ex" / "calib.npz", "--out", d / "cal.json",
        "--samples", "64",
    )  # fmt: skip
    assert code == 0, err
    return d


def _convert(d, out, *extra: str) -> tuple[int, str, str]:
    return run_cli("convert", d / "ex" / "model.onnx", "--calibration", d / "cal.json", "--out", out, *extra)


def test_cli_set_is_applied_and_recorded_in_the_artefact(mlp_example) -> None:
    out = mlp_example / "snn"
    code, _, err = _convert(
        mlp_example, out, "--recipe", "spikezip_count", "--set", "spike_all.levels=8", "--set", "timesteps=16",
        "--set", "tolerance=0",
    )  # fmt: skip
    assert code == 0, err
    rec = json.loads((out / "recipe.json").read_text())
    assert rec["timesteps"] == 16
    assert {k: v for e in rec["passes"] for k, v in e.items()}["spike_all"]["levels"] == 8
    graph = json.loads((out / "graph.json").read_text())
    assert graph["meta"]["timesteps"] == 16
    # the neurons were built with L = 8 (tolerance 0: no tensor's L raised): every spike_all neuron's
    # count bound is 8, not the file's 16
    bounds = {n["attrs"]["hi"] for n in graph["nodes"] if n["op"] == "IF"}
    assert bounds == {8.0}


def test_cli_percentile_is_recorded_too(mlp_example) -> None:
    out = mlp_example / "snn_p"
    code, _, err = _convert(mlp_example, out, "--recipe", "mueller2021", "--percentile", "99.5")
    assert code == 0, err
    rec = json.loads((out / "recipe.json").read_text())
    assert {k: v for e in rec["passes"] for k, v in e.items()}["normalize"]["percentile"] == 99.5


@pytest.mark.parametrize(
    ("recipe", "item"),
    [("sit2024", "v0=0.25"), ("mueller2021", "nosuch=1"), ("spikezip_count", "levels=abc")],
)
def test_cli_bad_set_exits_non_zero_with_one_line_and_writes_nothing(mlp_example, recipe, item) -> None:
    out = mlp_example / f"bad_{recipe}"
    code, stdout, err = _convert(mlp_example, out, "--recipe", recipe, "--set", item)
    assert code != 0
    assert err.startswith("error: --set ") or " with --set " in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()
