import numpy as np
import pytest
import torch
from PIL import Image

from ganscope import plots


def test_make_grid_places_each_image():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1).expand(5, 3, 4).contiguous()
    grid = plots.make_grid(images, nrow=2, padding=1, pad_value=255)
    assert grid.shape == (3 * 4 + 1, 2 * 5 + 1)
    assert grid[1, 1] == 0 and grid[1, 6] == 1 and grid[5, 1] == 2 and grid[9, 1] == 4
    assert grid[0, 0] == 255 and grid[9, 6] == 255  # padding and the empty sixth cell
    scaled = plots.make_grid(images[:1], scale=3, padding=0)
    assert scaled.shape == (9, 12)
    with pytest.raises(ValueError):
        plots.make_grid(images.float())


def test_training_curves_figure(tmp_path):
    records = [
        {"kind": "step", "step": s, "loss_D": 1.0, "loss_G": 2.0, "D(x)": 0.6, "D(G(z))": 0.3}
        for s in range(1, 11)
    ]
    records.append(
        {"kind": "epoch", "step": 10, "loss_D": 1.0, "loss_G": 2.0, "D(x)": 0.6, "D(G(z))": 0.3}
    )
    path = plots.plot_training_curves(records, tmp_path / "c.png", title="t")
    assert Image.open(path).size == (1100, 400)


def test_gif_frames(tmp_path):
    frames = [np.full((10, 12), value, np.uint8) for value in (0, 128, 255)]
    gif = Image.open(plots.save_gif(frames, tmp_path / "a.gif"))
    assert gif.n_frames == 3 and gif.size == (12, 10)
