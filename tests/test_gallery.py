"""The gallery's collapse check: a generator that ignores z is named after its epoch."""

import pytest
import torch

from ganscope import gallery, trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.state import GRID_ROW


def _grid(rows: int, noise: float, seed: int = 0) -> torch.Tensor:
    """``rows`` rows of ``GRID_ROW`` images; each row one image plus per-image noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(rows, 1, 28, 28, generator=g).expand(rows, GRID_ROW, 28, 28)
    images = base + noise * torch.randn(rows, GRID_ROW, 28, 28, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).reshape(-1, 28, 28)


def test_spread_is_measured_within_rows():
    # rows unlike each other but alike within: a conditional G that ignores z
    assert gallery.z_spread(_grid(10, 0.0)) == 0.0
    assert "collapsed" in gallery.collapse_warning(_grid(10, 0.0), epoch=3)
    assert "epoch 3" in gallery.collapse_warning(_grid(10, 0.0), epoch=3)
    varied = _grid(8, 0.2)
    assert gallery.z_spread(varied) > 0.1
    assert gallery.collapse_warning(varied, epoch=3) is None


def test_the_median_row_decides():
    # one varied row among collapsed ones is still a collapse; the reverse is not
    rows = torch.cat([_grid(1, 0.2, seed=1), _grid(9, 0.0)])
    assert gallery.collapse_warning(rows, epoch=1) is not None
    rows = torch.cat([_grid(1, 0.0), _grid(9, 0.2, seed=2)])
    assert gallery.collapse_warning(rows, epoch=1) is None


@pytest.mark.parametrize("collapsed", [True, False])
def test_training_warns_after_a_collapsed_epoch(
    tmp_path, small_split, monkeypatch, capsys, collapsed
):
    if collapsed:
        monkeypatch.setattr(gallery, "fixed_grid", lambda state: _grid(8, 0.0))
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    err = capsys.readouterr().err
    assert ("the generator has collapsed" in err) == collapsed
    assert run.sample_grid_path(1).is_file()
