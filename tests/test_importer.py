"""``ganscope import`` (``importer``): generators ganscope did not write, made here as a
student's own code would make them, read by every command as if ganscope had trained them."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganscope import load_run, trainer
from ganscope.analysis import analyze_run
from ganscope.classifier import load_classifier
from ganscope.cli import main
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import to_uint8
from ganscope.errors import GanscopeError
from ganscope.evaluation import evaluate_generator, evaluate_run, load_reference
from ganscope.export import export_generator
from ganscope.gallery import write_progress_gif, write_samples
from ganscope.importer import import_generator
from ganscope.options import ExportOptions
from ganscope.sampling import generate, latent

sys.path.insert(0, str(Path(__file__).parent))
from foreign_generators import DCGANGenerator, SigmoidMLP, UpsampleGenerator, seeded  # noqa: E402

HELPERS = Path(__file__).parent / "foreign_generators.py"
ANALYSIS = {"dims": ("3", "7"), "n": 4, "sefa": 2, "pca": 2, "bootstrap": 10, "progress": False}


class AsContract(torch.nn.Module):
    """The sigmoid MLP as ganscope's contract wants it, written by hand: what the import's
    adapter must equal."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.z_dim = inner, inner.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z).view(-1, 1, 28, 28) * 2 - 1


class FromUniform(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.z_dim = inner, inner.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(2 * torch.special.ndtr(z) - 1)


def onnx_file(module: torch.nn.Module, path: Path, z_dim: int) -> Path:
    pytest.importorskip("onnxscript")
    torch.onnx.export(
        module, (torch.zeros(2, z_dim),), str(path), input_names=["z"], output_names=["images"],
        dynamic_shapes={"z": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False,
        external_data=False,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """The three generators, their files, and their imported runs (name -> (module as the
    contract wants it, run))."""
    folder = tmp_path_factory.mktemp("foreign")
    dcgan = seeded(DCGANGenerator, z_dim=64)
    torch.jit.save(torch.jit.script(dcgan), folder / "dcgan.pt")
    mlp = seeded(SigmoidMLP, seed=1, z_dim=32)
    onnx_file(mlp, folder / "mlp.onnx", 32)
    upsample = seeded(UpsampleGenerator, seed=2, z_dim=16)
    torch.save(upsample.state_dict(), folder / "upsample.pt")
    runs = {
        "torchscript": (dcgan, import_generator([folder / "dcgan.pt"], out=folder / "ts")),
        "onnx": (
            AsContract(mlp),
            import_generator([folder / "mlp.onnx"], out=folder / "onnx", output_range="0,1"),
        ),
        "state_dict": (
            FromUniform(upsample),
            import_generator(
                [folder / "upsample.pt"],
                out=folder / "sd",
                latent="uniform",
                module=f"{HELPERS}:UpsampleGenerator",
                class_args='{"z_dim": 16}',
            ),
        ),  # fmt: skip
    }
    return folder, runs


@pytest.mark.parametrize("kind", ["torchscript", "onnx", "state_dict"])
def test_the_imported_run_says_where_it_came_from(foreign, kind):
    folder, runs = foreign
    _, run = runs[kind]
    source = load_run(run.path).config.source
    assert source.format == kind and source.epochs == (1,)
    original = folder / source.files[0]
    import hashlib

    assert source.sha256[0] == hashlib.sha256(original.read_bytes()).hexdigest()
    assert run.config.model.z_dim == {"torchscript": 64, "onnx": 32, "state_dict": 16}[kind]
    assert json.loads(run.config_path.read_text())["config"]["source"]["format"] == kind


@pytest.mark.parametrize("kind", ["torchscript", "onnx", "state_dict"])
def test_sample_gives_the_modules_own_images(foreign, kind):
    """Through the run folder, the same z makes the images the module itself makes (bit for
    bit through torch; ONNX through onnxruntime, within float rounding)."""
    module, run = foreign[1][kind]
    z = latent(32, run.config.model.z_dim, 5)
    imported, direct = generate(run.generator(), z), generate(module, z)
    if kind == "onnx":
        assert (imported - direct).abs().max() < 1e-5
    else:
        assert torch.equal(imported, direct)
    paths = write_samples(run, n=16, npz=True)
    assert paths[0].is_file() and paths[0].stat().st_size > 1000


@pytest.fixture(scope="module")
def reference(fashion_dir):
    return load_reference("fashion-mnist", str(fashion_dir), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torchscript", "onnx", "state_dict"])
def test_evaluate_equals_evaluating_the_module(foreign, fashion_dir, reference, kind):
    """The imported run's evaluation equals evaluating the module itself through the Python
    API (``evaluate`` itself, whose reference loading costs seconds, on the ONNX one)."""
    module, run = foreign[1][kind]
    direct, _ = evaluate_generator(module, reference, load_classifier(), n=300, seed=0)
    if kind == "onnx":
        record = evaluate_run(run, n=300, data_dir=str(fashion_dir), progress=False)
        assert record["model"] == "imported" and record["epoch"] == 1
    else:
        record, _ = evaluate_generator(run.generator(), reference, load_classifier(), n=300, seed=0)
    for key in ("fid", "kid", "precision", "recall", "class_entropy"):
        assert record[key] == pytest.approx(direct[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torchscript", "onnx", "state_dict"])
def test_analyze_reads_every_imported_generator(foreign, kind):
    """Dimensions, SeFa and GANSpace from the layer that reads z (a linear layer, a
    transposed convolution of z as a 1x1 image, an ONNX Gemm), and the boundaries."""
    module, run = foreign[1][kind]
    result = analyze_run(run, boundary_n=200, **ANALYSIS)
    record = run.analysis_record()
    assert record is not None and result["paths"]
    assert len(record["sefa_rows"]) == 2 and len(record["pca_rows"]) == 2
    assert {row["dim"] for row in record["rows"]} >= {3, 7}


def test_the_first_layer_is_the_modules(foreign):
    """SeFa's weight: the DCGAN's transposed convolution read as (C*k*k, z_dim), the ONNX
    MLP's first Gemm, the state_dict's linear layer."""
    runs = foreign[1]
    dcgan = runs["torchscript"][0]
    weight, bias = runs["torchscript"][1].generator().first_layer()
    first = dcgan.net[0].weight  # (64, 64, 7, 7)
    assert torch.allclose(weight.float(), first.reshape(64, -1).T) and not bias.any()
    weight, bias = runs["onnx"][1].generator().first_layer()
    linear = runs["onnx"][0].inner.net[0]
    assert torch.allclose(weight.float(), linear.weight, atol=1e-7)
    assert torch.allclose(bias.float(), linear.bias, atol=1e-7)
    weight, _ = runs["state_dict"][1].generator().first_layer()
    assert torch.equal(weight.float(), runs["state_dict"][0].inner.project.weight)


@pytest.mark.parametrize("kind", ["torchscript", "onnx", "state_dict"])
def test_serve_shows_an_imported_run_and_a_slider_moves_it(foreign, kind):
    fastapi = pytest.importorskip("fastapi")  # noqa: F841
    from fastapi.testclient import TestClient

    from ganscope import web

    _, run = foreign[1][kind]
    z_dim = run.config.model.z_dim
    client = TestClient(
        web.create_app(web.Explorer([str(run.path)])), base_url="http://127.0.0.1:8000"
    )
    assert client.get("/").status_code == 200
    listed = client.get("/api/runs").json()
    assert listed[0]["epochs"] == [1] and listed[0]["z_dim"] == z_dim
    z = latent(1, z_dim, 2)[0].tolist()

    def image(body):
        answer = client.post("/api/generate", json=body)
        assert answer.status_code == 200, answer.text
        data = base64.b64decode(answer.json()["image"].split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)))

    plain = image({"run": 0, "z": z})
    expected = to_uint8(generate(run.generator(), torch.tensor([z])))[0].numpy()
    assert np.array_equal(plain, expected)
    shifted = list(z)
    shifted[5] += 8
    assert not np.array_equal(image({"run": 0, "z": shifted}), plain)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
def test_the_explorer_page_moves_an_imported_onnx_generator(foreign):
    """In a browser: the page loads the imported ONNX run and a slider changes its image."""
    from conftest import serve_explorer
    from ganscope import web

    playwright = pytest.importorskip("playwright.sync_api")
    _, run = foreign[1]["onnx"]
    errors = []
    for url in serve_explorer(web.Explorer([str(run.path)])):
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--headless"],
            )  # fmt: skip
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.getElementById('image').src.startsWith('data:')")
            first = page.eval_on_selector("#image", "el => el.src")
            move = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }"
            page.eval_on_selector("input[data-key='dim5']", move, 6)
            page.wait_for_function(
                "prev => document.getElementById('image').src !== prev", arg=first
            )
            browser.close()
    assert errors == []


def test_a_conditional_export_imports_with_its_classes(tmp_path, small_split):
    config = RunConfig(
        model=ModelConfig("mlp", conditioning="projection"),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    script = export_generator(run, ExportOptions(format="torchscript"))["path"]
    back = import_generator([script], out=tmp_path / "back")
    assert back.config.model.conditional and back.config.num_classes == 10
    z, labels = latent(20, 100, 1), torch.arange(20) % 10
    assert torch.equal(
        generate(back.generator(), z, labels=labels), generate(run.generator(), z, labels=labels)
    )
    paths = write_samples(back, n=10, class_name="Sneaker")
    assert paths[0].is_file()


@pytest.mark.slow
def test_a_ganscope_export_round_trips_bit_for_bit(tmp_path, small_split, fashion_dir):
    """TorchScript: the imported export makes the run's own images bit for bit; ONNX: the
    file's own images, and the run's within float rounding. The metadata fills z_dim and
    the epoch."""
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=2, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    z = latent(64, 100, 9)
    own = generate(run.generator(), z)
    script = export_generator(run, ExportOptions(format="torchscript", epoch=1))["path"]
    imported = import_generator([script], out=tmp_path / "back-ts")
    assert imported.generator_epochs() == [1] and imported.config.model.z_dim == 100
    assert imported.config.source.producer.startswith("ganscope")
    assert torch.equal(generate(imported.generator(), z), generate(run.generator(epoch=1), z))
    own_record = evaluate_run(run, epoch=1, n=200, data_dir=str(fashion_dir), progress=False)
    back_record = evaluate_run(imported, n=200, data_dir=str(fashion_dir), progress=False)
    assert {k: back_record[k] for k in ("fid", "kid", "precision", "coverage")} == {
        k: own_record[k] for k in ("fid", "kid", "precision", "coverage")
    }
    pytest.importorskip("onnxscript")
    path = export_generator(run, ExportOptions(format="onnx"))["path"]
    back = import_generator([path], out=tmp_path / "back-onnx")
    assert back.generator_epochs() == [2]
    assert (generate(back.generator(), z) - own).abs().max() < 1e-5
    pixels = [np.load(write_samples(r, n=8, npz=True)[1])["images"] for r in (run, back)]
    assert np.abs(pixels[0].astype(int) - pixels[1]).max() <= 1  # uint8 levels


def test_several_files_are_the_epochs_of_one_run(tmp_path):
    files = []
    for seed in (0, 1, 2):
        module = seeded(DCGANGenerator, seed=seed, z_dim=64)
        files.append(tmp_path / f"g{seed}.pt")
        torch.jit.save(torch.jit.script(module), files[-1])
    run = import_generator([str(tmp_path / "g*.pt")], out=tmp_path / "globbed")
    assert run.generator_epochs() == [1, 2, 3] and run.latest_epoch() == 3
    assert run.config.source.files == ("g0.pt", "g1.pt", "g2.pt")
    chosen = import_generator(files[:2], out=tmp_path / "chosen", epochs=(5, 10))
    assert chosen.generator_epochs() == [5, 10]
    z = latent(4, 64, 0)
    expected = seeded(DCGANGenerator, seed=1, z_dim=64)
    assert torch.equal(generate(chosen.generator(epoch=10), z), generate(expected, z))
    assert sorted(chosen.sample_grid_paths()) == [5, 10]
    assert write_progress_gif(chosen).is_file()  # animate: one frame per imported epoch


@pytest.mark.slow
def test_report_puts_your_gan_beside_a_trained_one(
    foreign, tmp_path, small_split, fashion_dir, monkeypatch
):
    from ganscope import reproduce

    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    trained = trainer.train(config, tmp_path / "mlp", split=small_split, progress=False)
    imported = load_run(foreign[1]["state_dict"][1].path)
    profile = reproduce.Profile("tiny", eval_n=200, analysis_n=8, analysis_dims=("1", "5"),
                                sefa=2, boundary_n=200, compare_n=16)  # fmt: skip
    options = reproduce.ReportOptions(out=str(tmp_path / "report"), progress=False)
    paths = reproduce.write_report([trained, imported], options, profile=profile)
    text = Path(paths["md"]).read_text()
    assert "### your GAN (upsample.pt)" in text and "### MLP GAN" in text
    assert "module: foreign_generators.py:UpsampleGenerator" in text  # where it came from
    assert "training time: your GAN" not in text  # it was not trained here


# -- refusals: one line, exit 2, nothing written ---------------------------------------------------
class ThreeChannels(torch.nn.Module):
    def forward(self, z):
        return torch.tanh(z[:, :1].repeat(1, 3 * 28 * 28).view(-1, 3, 28, 28))


class Big(torch.nn.Module):
    def forward(self, z):
        return torch.tanh(z[:, :1].repeat(1, 32 * 32).view(-1, 1, 32, 32))


class Unbounded(torch.nn.Module):
    def forward(self, z):
        return 3 * z[:, :1].repeat(1, 784)


class NaNs(torch.nn.Module):
    def forward(self, z):
        return torch.full((z.shape[0], 784), float("nan")) + z[:, :1]


def _refused(capsys, argv: list[str], message: str, out: Path) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.importing-*"))


@pytest.mark.parametrize(
    "make, flags, message",
    [
        ("text", [], "not a model ganscope can read"),
        ("three", [], "images of shape (3, 28, 28)"),
        ("big", [], "images of shape (1, 32, 32)"),
        ("unbounded", [], "outside its declared range [-1, 1]"),
        ("nan", [], "NaN or infinite"),
        ("three", ["--z-dim", "7"], "does not match"),
        ("mlp-sd", ["--module", "nowhere.at.all:Thing"], "cannot be imported"),
        ("mlp-sd", ["--module", f"{HELPERS}:DCGANGenerator"], "does not fit"),
        ("mlp-sd", [], "torch.save file, not TorchScript"),
        ("ts-noz", [], "give --z-dim"),
    ],
)
def test_bad_files_are_refused_with_one_line(tmp_path, capsys, make, flags, message):
    file = tmp_path / "model.onnx"
    if make == "text":
        file = tmp_path / "notes.txt"
        file.write_text("not a model")
    elif make in ("three", "big", "unbounded", "nan"):
        module = {"three": ThreeChannels, "big": Big, "unbounded": Unbounded, "nan": NaNs}[make]
        onnx_file(module(), file, 8)
    elif make == "mlp-sd":
        file = tmp_path / "weights.pt"
        torch.save(SigmoidMLP(z_dim=32).state_dict(), file)
    else:
        file = tmp_path / "traced.pt"
        torch.jit.save(torch.jit.trace(Unbounded(), torch.zeros(2, 4)), file)
    out = tmp_path / "out"
    _refused(capsys, ["import", str(file), "--out", str(out), *flags], message, out)


def test_other_mistakes_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    _refused(
        capsys, ["import", str(tmp_path / "missing.pt"), "--out", str(out)], "does not exist", out
    )
    module = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(seeded(DCGANGenerator)), module)
    _refused(capsys, ["import", str(module), "--out", str(out), "--epoch", "1", "2"],
             "give one per file", out)  # fmt: skip
    _refused(capsys, ["import", str(module), "--out", str(out), "--class-args", "[1]"],
             "must be a JSON object", out)  # fmt: skip
    run = import_generator([module], out=out)
    with pytest.raises(GanscopeError, match="already holds a run"):
        import_generator([module], out=out)
    with pytest.raises(GanscopeError, match="no generator for epoch 4"):
        run.generator(epoch=4)
    with pytest.raises(GanscopeError, match="not trained with --ema"):
        evaluate_run(run, trained_weights=True, n=10)
    shutil.rmtree(run.path / "imported")
    with pytest.raises(GanscopeError, match="moved or deleted"):
        load_run(out).generator()


@pytest.mark.slow
def test_the_readmes_example_runs_as_written(tmp_path, fashion_dir, monkeypatch, capsys):
    """README's "Bring your own generator": its Python file and its commands, as written
    (serve excepted: it blocks; the explorer is tested above)."""
    import re
    import subprocess

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Bring your own generator", 1)[1].split("\n## ", 1)[0]
    python, commands = re.findall(r"```(?:python|bash)\n(.*?)```", section, re.S)[:2]
    (tmp_path / "my_gan.py").write_text(python)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))
    lines = [line.split("#")[0].split() for line in commands.strip().splitlines()]
    assert lines[0] == ["python", "my_gan.py"]
    subprocess.run([sys.executable, "my_gan.py"], check=True, cwd=tmp_path)
    ran = []
    for argv in lines[1:]:
        assert argv[0] == "ganscope"
        if argv[1] == "serve":
            continue
        if argv[1] == "analyze":  # the default analysis, made smaller for the test's time
            argv = [*argv, "--n", "8", "--boundary-n", "500"]
        assert (
            main([*argv[1:], *(["--no-progress"] if argv[1] in ("evaluate", "analyze") else [])])
            == 0
        ), argv
        ran.append(argv[1])
    assert ran == ["import", "sample", "evaluate", "analyze"]
    run = load_run(tmp_path / "runs" / "mine")
    assert run.imported and run.config.model.z_dim == 64 and run.analysis_record() is not None
    assert (run.path / "imported" / "my_gan.py").is_file()
