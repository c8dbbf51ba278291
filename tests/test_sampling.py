import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganscope import cli, sampling, trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError
from ganscope.models import build_generator


@pytest.fixture(scope="module")
def cnn_generator():
    torch.manual_seed(0)
    generator = build_generator("cnn")
    # Non-trivial BatchNorm running statistics, so eval mode matters.
    generator.train()
    with torch.no_grad():
        generator(torch.randn(64, 100))
    return generator.eval()


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_split):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=2, device="cpu"))
    return trainer.train(
        config, tmp_path_factory.mktemp("s") / "run", split=small_split, progress=False
    )


def test_sample_is_deterministic_and_batch_independent(cnn_generator):
    a = sampling.sample(cnn_generator, 10, seed=4)
    b = sampling.sample(cnn_generator, 10, seed=4)
    assert a.shape == (10, 1, 28, 28) and torch.equal(a, b)
    assert not torch.equal(a, sampling.sample(cnn_generator, 10, seed=5))
    z = sampling.latent(10, 100, seed=4)
    one_by_one = torch.cat([sampling.generate(cnn_generator, z[i : i + 1]) for i in range(10)])
    torch.testing.assert_close(sampling.generate(cnn_generator, z, batch_size=3), one_by_one)
    assert cnn_generator.training is False


def test_traversal_rows(cnn_generator):
    z = sampling.latent(6, 100, seed=1)
    dims, deltas = [20, 50, 99], [-10.0, 0.0, 10.0]
    images = sampling.traverse(cnn_generator, dims, deltas, z)
    assert images.shape == (3, 3, 6, 1, 28, 28)
    plain = sampling.generate(cnn_generator, z)
    for i in range(len(dims)):
        # Row 2 is plain sampling of the same z, for every dimension.
        torch.testing.assert_close(images[i, 1], plain)
        assert not torch.allclose(images[i, 0], plain)
    shifted = sampling.shifted(z, dims, deltas)
    for i, dim in enumerate(dims):
        for j in (0, 2):
            difference = shifted[i, j] - z
            others = torch.ones(100, dtype=torch.bool)
            others[dim] = False
            assert torch.all(difference[:, others] == 0)  # only dimension d changed
            assert torch.allclose(difference[:, dim], torch.full((6,), deltas[j]))


@pytest.mark.parametrize(
    "dims, deltas, message",
    [
        ([100], [1.0], "out of range: valid are 0..99"),
        ([-1], [1.0], "out of range"),
        ([], [1.0], "at least one"),
        ([3], [float("inf")], "must be finite"),
        ([3], [float("nan")], "must be finite"),
        ([3], [1e6], "at most 1000"),
    ],
)
def test_traversal_rejects_bad_input(cnn_generator, dims, deltas, message):
    with pytest.raises(GanscopeError, match=message):
        sampling.traverse(cnn_generator, dims, deltas, sampling.latent(2, 100, 0))


def test_interpolation_ends_at_both_vectors(cnn_generator):
    z_a, z_b = sampling.latent(1, 100, 0), sampling.latent(1, 100, 1)
    for method in ("slerp", "lerp"):
        path = sampling.interpolate(cnn_generator, z_a, z_b, steps=5, method=method)
        assert path.shape == (5, 1, 28, 28)
        torch.testing.assert_close(path[0], sampling.generate(cnn_generator, z_a)[0])
        torch.testing.assert_close(path[-1], sampling.generate(cnn_generator, z_b)[0])
    t = torch.linspace(0, 1, 5)
    norms = sampling.slerp(z_a[0], z_a[0] * 2, t).norm(dim=1)
    assert torch.all(norms[1:] >= norms[:-1])  # parallel vectors fall back to lerp
    with pytest.raises(GanscopeError, match="unknown method"):
        sampling.interpolate(cnn_generator, z_a, z_b, method="cubic")
    with pytest.raises(GanscopeError, match="at least 2"):
        sampling.interpolate(cnn_generator, z_a, z_b, steps=1)


def test_cli_writes_figures_of_the_expected_size(run, tmp_path, capsys):
    assert cli.main(["traverse", str(run.path), "--n", "5", "--out", str(tmp_path / "t")]) == 0
    figure = Image.open(tmp_path / "t" / "dim_020.png")
    # title 22 px + 3 rows of (28*2+2) + 2; labels 96 px + 5 columns of (28*2+2) + 2
    assert figure.size == (96 + 5 * 58 + 2, 22 + 3 * 58 + 2)
    overview = Image.open(tmp_path / "t" / "overview.png")
    assert overview.size[1] == 5 * figure.size[1] + 4 * 6
    assert (
        cli.main(
            [
                "traverse",
                str(run.path),
                "--dims",
                "3",
                "--steps",
                "7",
                "--n",
                "2",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "s" / "dim_003.png").size == (96 + 7 * 58 + 2, 22 + 2 * 58 + 2)

    grid = tmp_path / "g.png"
    assert (
        cli.main(
            [
                "sample",
                str(run.path),
                "--n",
                "10",
                "--nrow",
                "5",
                "--out",
                str(grid),
                "--npz",
                "--save-individual",
            ]
        )
        == 0
    )
    assert Image.open(grid).size == (5 * 58 + 2, 2 * 58 + 2)
    arrays = np.load(tmp_path / "g.npz")
    assert arrays["images"].shape == (10, 28, 28) and arrays["z"].shape == (10, 100)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g" / "00003.png")), arrays["images"][3])
    assert torch.equal(torch.from_numpy(arrays["z"]), sampling.latent(10, 100, 0))

    assert (
        cli.main(
            [
                "interpolate",
                str(run.path),
                "--seeds",
                "0",
                "1",
                "2",
                "--steps",
                "6",
                "--out",
                str(tmp_path / "i.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "i.png").size == (96 + 6 * 58 + 2, 22 + 2 * 58 + 2)

    gif = Image.open(run.path / "figures" / "progress.gif")  # written during training
    assert gif.n_frames == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["traverse", "{run}", "--dims", "100"], "out of range"),
        (["traverse", "{run}", "--delta", "inf"], "must be finite"),
        (["traverse", "{run}", "--delta", "0"], "--delta must be positive"),
        (["traverse", "{run}", "--steps", "1"], "--steps must be at least 2"),
        (["sample", "{run}", "--n", "0"], "n must be at least 1"),
        (["sample", "{run}", "--epoch", "9"], "no generator for epoch 9"),
        (["sample", "/no/such/run"], "does not exist"),
        (["interpolate", "{run}", "--seeds", "1"], "at least two seeds"),
        (["interpolate", "{run}", "--method", "cubic"], "--method must be one of slerp, lerp"),
        (["sample", "{run}", "--seed=-1"], "--seed must be in 0..9223372036854775807"),
        (["animate", "{run}", "--frame-ms", "0"], "--frame-ms must be in 1..655350"),
        (["sample", "{run}", "--device", "cuda:7"], "--device cuda:7"),
    ],
)
def test_cli_errors_write_nothing(run, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{run}", str(run.path)) for a in argv] + ["--out", str(out)]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_run_without_checkpoint_is_an_error(tmp_path, capsys):
    from ganscope.runs import create_run

    create_run(tmp_path / "empty", RunConfig())
    assert cli.main(["sample", str(tmp_path / "empty")]) == 2
    assert "no checkpoint yet" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["checkpoints/last.pt", "config.json", "metrics.jsonl"])
def test_outputs_never_replace_the_run_state(run, capsys, target):
    before = (run.path / target).read_bytes()
    assert cli.main(["sample", str(run.path), "--out", str(run.path / target)]) == 2
    assert "training state" in capsys.readouterr().err
    assert (run.path / target).read_bytes() == before


def test_json_output_lists_the_written_files(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["sample", str(run.path), "--n", "4", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [str(out)]


def test_interpolate_offers_exactly_the_paths_it_draws():
    from ganscope.checks import INTERPOLATION_METHODS
    from ganscope.sampling import INTERPOLATIONS

    assert tuple(INTERPOLATIONS) == INTERPOLATION_METHODS
