"""How much each run's per-epoch grids change with z: ``gallery.z_spread`` read back from PNG.

    python benchmarks/grid_spread.py RUN/samples/epoch_001.png [RUN2/samples/epoch_010.png ...]

Prints, per grid, the median over its rows of each pixel's spread across the row's 8 latent
vectors (what ``train`` warns about under ``gallery.COLLAPSE_SPREAD``). The grids are the
ones training wrote (``gallery.write_fixed_grid``: 28 x 28 images at scale 2, 2-pixel
padding, 8 to a row), so runs that finished before the warning existed can be measured too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganscope import gallery


def read_grid(path: Path, size: int = 28, scale: int = 2, padding: int = 2) -> torch.Tensor:
    """The uint8 images ``(N, size, size)`` of a grid written by ``plots.save_grid``."""
    array = np.asarray(Image.open(path).convert("L"))
    cell = size * scale + padding
    rows, cols = (array.shape[0] - padding) // cell, (array.shape[1] - padding) // cell
    images = [
        array[padding + r * cell : padding + r * cell + size * scale : scale,
              padding + c * cell : padding + c * cell + size * scale : scale]
        for r in range(rows)
        for c in range(cols)
    ]  # fmt: skip
    return torch.from_numpy(np.stack(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grids", nargs="+", type=Path, help="RUN/samples/epoch_NNN.png files")
    for path in parser.parse_args().grids:
        print(f"{path}: z spread {gallery.z_spread(read_grid(path)):.3f}")


if __name__ == "__main__":
    main()
