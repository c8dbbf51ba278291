"""``ganscope export``: the generator alone, run outside ganscope, gives generate()'s images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganscope import cli, trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.export import export_generator, read_metadata
from ganscope.options import ExportOptions
from ganscope.sampling import generate

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained(request, tmp_path_factory, small_split):
    config = RunConfig(
        model=ModelConfig(request.param), train=TrainConfig(epochs=2, device="cpu", seed=4)
    )
    out = tmp_path_factory.mktemp("export") / request.param
    return trainer.train(config, out, split=small_split, progress=False)


def _latents(n: int) -> torch.Tensor:
    return torch.randn(n, 100, generator=torch.Generator().manual_seed(n))


def test_onnx_file_gives_the_images_of_generate(trained):
    result = export_generator(trained, ExportOptions(format="onnx", epoch=1))
    assert result["path"].endswith("exports/generator_epoch_001.onnx")
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z"]
    generator, epoch = trained.generator_at(1)
    assert epoch == 1
    for n in (1, 64):
        z = _latents(n)
        (images,) = session.run(None, {"z": z.numpy()})
        expected = generate(generator, z).numpy()
        assert images.shape == (n, 1, 28, 28)
        assert np.abs(images - expected).max() <= 1e-5
    meta = read_metadata(result["path"])
    assert meta == result["metadata"]
    assert meta["epoch"] == "1" and meta["z_dim"] == "100" and meta["output_range"] == "[-1, 1]"
    assert json.loads(meta["run_config"]) == trained.config.to_dict()
    assert meta["torch_version"] == torch.__version__


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_file_gives_the_images_of_generate(trained, tmp_path):
    out = tmp_path / "g.pt"
    result = export_generator(trained, ExportOptions(format="torchscript", out=str(out)))
    module = torch.jit.load(str(out))
    generator, epoch = trained.generator_at()
    assert epoch == 2 and read_metadata(out)["epoch"] == "2"
    for n in (1, 64):
        z = _latents(n)
        with torch.no_grad():
            images = module(z)
        assert (images - generate(generator, z)).abs().max() <= 1e-5
    assert result["metadata"]["model"] == trained.config.model.name


def test_export_command_prints_the_metadata_and_refuses_bad_input(trained, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    code = cli.main(["export", str(trained.path), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert f"wrote {out}" in printed and "z_dim: 100" in printed and "torch_version:" in printed
    for argv, message in (
        (["--format", "pdf"], "--format must be one of onnx, torchscript, got 'pdf'"),
        (["--epoch", "9"], "has no generator for epoch 9"),
        (["--out", str(out)], "already exists; pass --overwrite"),
    ):
        assert cli.main(["export", str(trained.path), *argv]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "nothing")]) == 2
