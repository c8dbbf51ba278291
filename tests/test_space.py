"""``space``: a sweep's TOML space, checked whole; every mistake one line."""

from __future__ import annotations

import pytest

from ganscope.cli import main
from ganscope.errors import GanscopeError
from ganscope.space import parse_space, read_space

GOOD = """
[study]
model = "mlp"
epochs = 2
trials = 4
sampler = "grid"

[params]
lr = { choices = [0.0002, 0.001] }
batch_size = { choices = [32, 64] }
"""


def test_a_good_space_and_its_trial_configs(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(GOOD)
    space = read_space(path)
    assert space.objectives == [("fid", "minimize")] and space.trials == 4
    config = space.config({"lr": 0.001, "batch_size": 32})
    assert config.train.lr == 0.001 and config.train.batch_size == 32
    assert config.train.eval_every == 1 and config.train.epochs == 2
    assert space.config({"lr": 0.001, "batch_size": 32}, seed=7).train.seed == 7
    assert read_space(path).digest() == space.digest()
    assert parse_space({**_raw(), "study": {"epochs": 3}}).digest() != space.digest()


def _raw():
    import tomllib

    return tomllib.loads(GOOD)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["params"].update(speed={"choices": [1]}), "speed is not a setting"),
        (lambda r: r["params"].update(device={"choices": ["cpu"]}), "device is not a setting"),
        (lambda r: r["params"].update(lr={"choices": []}), "lr has empty choices"),
        (lambda r: r["params"].update(lr={"choices": [-1.0]}), "--lr must be a positive"),
        (lambda r: r["params"].update(beta1={"low": 0.5, "high": 1.5}), "--beta1 must be in"),
        (lambda r: r["params"].update(lr={"low": 1e-3, "high": 1e-4}), "needs low < high"),
        (lambda r: r["params"].update(loss={"low": 0, "high": 1}), "not a number"),
        (lambda r: r["study"].update(sampler="bayes"), "sampler is one of"),
        (lambda r: r["study"].update(objectives=["beauty"]), "objectives are one or two"),
        (lambda r: r["study"].update(epochs="3"), "should be a int"),
        (lambda r: r["study"].update(colour="red"), "unknown setting(s) ['colour']"),
        (lambda r: r["study"].update(model="gpt"), "unknown model 'gpt'"),
        (lambda r: r.update(extras={}), "unknown table(s) ['extras']"),
        (lambda r: r.update(confirm={"top": 1, "seeds": [0]}), "seeds must be fresh"),
        (lambda r: r.pop("params"), "in [params], or named recipes in [points]"),
        (lambda r: r.update(points={"a": {"ema": 0.9}}), "(one of the two)"),
        (lambda r: r["study"].update(eval_every=3), "eval_every within 1..epochs"),
        (lambda r: r["study"].update(seeds=[-1]), "seeds are whole numbers"),
        (lambda r: r["study"].update(precision="fp8"), "--precision must be"),
        (
            lambda r: r.update(confirm={"top": 1, "seeds": [5]}) or r["study"].update(seeds=[5]),
            "seeds must be fresh",
        ),
    ],
)
def test_a_bad_space_is_one_line(change, message):
    raw = _raw()
    change(raw)
    with pytest.raises(GanscopeError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        parse_space(raw)


POINTS = """
[study]
model = "mlp"
epochs = 3
eval_every = 3
sampler = "grid"
seeds = [4, 5]
precision = "fp32"

[points]
seed = {}
ema-r1 = { ema = 0.999, r1_gamma = 1.0 }
improved = { preset = "improved", ema = 0.999, spectral_norm = true }
"""


def test_named_points_on_several_seeds():
    import tomllib

    space = parse_space(tomllib.loads(POINTS))
    grid = space.grid_params()
    assert grid["point"].choices == ("seed", "ema-r1", "improved")
    assert grid["seed"].choices == (4, 5) and not space.params
    config = space.config({"point": "ema-r1", "seed": 5})
    train = config.train
    assert (train.ema, train.r1_gamma, train.seed, train.eval_every) == (0.999, 1.0, 5, 3)
    assert train.precision == "fp32" and not train.spectral_norm
    assert space.config({"point": "seed", "seed": 4}).train.ema == 0.0
    assert space.config({"point": "improved", "seed": 4}, seed=9).train.seed == 9
    assert space.config({"point": "improved", "seed": 4}).train.preset == "improved"


@pytest.mark.parametrize(
    "point, message",
    [
        ({"warp": 1}, "[points] x: warp is not a setting"),
        ({"ema": 1.5}, "[points] x: ema = 1.5: --ema must be in"),
        ({"epochs": 4}, "epochs is not a setting"),
    ],
)
def test_a_bad_point_is_one_line(point, message):
    import tomllib

    raw = tomllib.loads(POINTS)
    raw["points"]["x"] = point
    with pytest.raises(GanscopeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_space(raw)
    raw = tomllib.loads(POINTS)
    raw["study"]["sampler"] = "tpe"
    with pytest.raises(GanscopeError, match="compared on a grid"):
        parse_space(raw)


def test_the_grid_needs_choices():
    raw = _raw()
    raw["params"]["lr"] = {"low": 1e-4, "high": 1e-3, "log": True}
    with pytest.raises(GanscopeError, match="grid sampler needs choices"):
        parse_space(raw)
    raw["study"]["sampler"] = "tpe"
    assert parse_space(raw).params["lr"].log


def test_the_command_refuses_a_bad_space_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_text(GOOD.replace("batch_size", "warp"))
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "warp is not a setting" in err
    assert not out.exists()
    path.write_text("this is = = not toml")
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    assert "is not TOML" in capsys.readouterr().err and not out.exists()
