import json

import pytest
import torch

from ganscope import cli, methods, methods_text, reproduce, trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import load_split
from ganscope.metrics import moments
from ganscope.sampling import latent


def _readings(n: int = 64, seed: int = 0) -> methods.Readings:
    generator = torch.Generator().manual_seed(seed)
    probs = torch.randn(n, 10, generator=generator).softmax(dim=1)
    return methods.Readings(torch.randn(n, 16, generator=generator), probs)


def _real():
    return moments(torch.randn(500, 16, generator=torch.Generator().manual_seed(9)))


def _boot(n: int = 64):
    return torch.randint(0, n, (200, n), generator=torch.Generator().manual_seed(1))


def test_an_edit_that_does_nothing_scores_nothing():
    base = _readings()
    rows = methods.score(base, {10.0: base}, target=3, keep=4, real=_real(), boot=_boot())
    (row,) = rows
    assert row["flip"] == 0 and row["gain"] == 0 and row["side_tv"] == 0
    assert row["off_target"] == 0 and row["keep_change"] == 0 and row["keep_leave"] == 0
    assert row["fid_drift"] == 0 and row["path_step"] == 0
    assert row["fid"] == pytest.approx(row["base_fid"]) and row["fid"] > 0


def test_a_direction_that_flips_every_image_scores_one():
    base = _readings()
    target = 3
    flipped = methods.Readings(base.features + 1, torch.nn.functional.one_hot(
        torch.full((64,), target), 10).float())  # fmt: skip
    near = methods.Readings(base.features + 0.5, (base.probs + flipped.probs) / 2)
    rows = methods.score(base, {5.0: near, 10.0: flipped}, target, None, _real(), _boot())
    assert [r["length"] for r in rows] == [5.0, 10.0]
    far = rows[1]
    assert far["flip"] == 1.0 and far["flip_ci"] == [1.0, 1.0]
    assert far["gain"] == pytest.approx(float((1 - base.probs[:, target]).mean()), abs=1e-6)
    assert far["off_target"] == 0  # every other class only loses
    # the path 0 -> 5 -> 10 moves the features by 0.5 * sqrt(16) = 2 per step
    assert far["path_step"] == pytest.approx(2.0, abs=1e-5)
    assert far["keep_change"] is None and far["fid_drift"] != 0
    low, high = far["gain_ci"]
    assert low <= far["gain"] <= high


def test_choose_takes_the_side_that_raises_the_class_most():
    rows = [
        {"direction": "dim 3", "base_distribution": [0.5, 0.5],
         "plus_distribution": [0.6, 0.4], "minus_distribution": [0.3, 0.7]},
        {"direction": "dim 8", "base_distribution": [0.5, 0.5],
         "plus_distribution": [0.45, 0.55], "minus_distribution": [0.9, 0.1]},
    ]  # fmt: skip
    vectors = {"dim 3": torch.eye(10)[3], "dim 8": torch.eye(10)[8]}
    direction, gain = methods.choose(rows, 0, vectors)
    assert direction.name == "-dim 8" and gain == pytest.approx(0.4)
    assert torch.equal(direction.vector, -torch.eye(10)[8])
    direction, gain = methods.choose(rows, 1, vectors)
    assert direction.name == "-dim 3" and gain == pytest.approx(0.2)
    assert methods.choose([], 0, vectors) is None


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, fashion_dir):
    """An MLP run of 2 epochs on 12,800 images (enough to draw most garments), analysed with
    few vectors (boundaries on 2,000)."""
    folder = tmp_path_factory.mktemp("methods") / "run"
    split = load_split("fashion-mnist", "train", fashion_dir, limit=12800, progress=False)
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=2, device="cpu"))
    run = trainer.train(config, folder, split=split, progress=False)
    argv = ["analyze", str(run.path), "--dims", "1", "20", "50", "--n", "16", "--sefa", "2",
            "--pca", "2", "--boundary-n", "2000", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    return run


def test_compare_methods_writes_the_table_chosen_and_scored_on_different_seeds(
    analysed, fashion_dir, capsys
):
    argv = ["analyze", str(analysed.path), "--compare-methods", "--compare-n", "24", "--length",
            "5", "10", "--data-dir", str(fashion_dir), "--no-progress", "--json"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    folder = analysed.path / "analysis"
    for name in ("methods.csv", "methods.md", "methods.png", "methods.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "methods.json").read_text())
    assert record["rows"] == printed["rows"]
    assert record["seed"] == 0 and record["compare_seed"] == 2  # not the analysis's vectors
    rows = record["rows"]
    fitted = [b for b in json.loads((folder / "dims.json").read_text())["boundaries"]
              if b["normal"] is not None]  # fmt: skip
    assert fitted, "the 2-epoch generator should draw at least one class often enough"
    assert {r["length"] for r in rows} == {5.0, 10.0}
    assert {"dims", "sefa", "pca"} <= {r["method"] for r in rows}
    assert {r["class"] for r in rows if r["method"] == "boundary"} == {b["class"] for b in fitted}
    for row in rows:
        assert 0 <= row["flip"] <= 1 if row["flip"] is not None else True
        assert row["fid_drift"] == pytest.approx(row["fid"] - row["base_fid"])
    lines = (folder / "methods.csv").read_text().splitlines()
    assert len(lines) == len(rows) + 1 and lines[0].startswith("class,method,direction")
    assert "best on flip rate" in (folder / "methods.md").read_text()


def test_the_scoring_vectors_are_not_the_analysis_vectors(analysed, fashion_dir):
    generator, _ = analysed.generator_at(None, "cpu")
    record = analysed.analysis_record()
    real = torch.randn(100, 128)
    from ganscope.boundaries import Boundary
    from ganscope.classifier import load_classifier
    from ganscope.options import AnalyzeOptions

    found_boundaries = [Boundary.from_record(b) for b in record["boundaries"]]
    options = AnalyzeOptions(compare_n=8, lengths=(10.0,), towards=("Trouser",), progress=False)
    rows, found = methods.compare(
        generator, load_classifier(), record, found_boundaries, real, options
    )
    assert not torch.equal(found["z"], latent(8, 100, record["seed"]))
    assert torch.equal(found["z"], latent(8, 100, record["seed"] + 2))
    assert {r["class"] for r in rows} == {"Trouser"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--towards", "Spaceship"], "unknown class 'Spaceship'"),
        (["--compare-seed", "0"], "the analysis's or the boundaries' seed"),
        (["--compare-seed", "1"], "the analysis's or the boundaries' seed"),
        (["--length", "5"], "must include the analysis's delta 10"),
        (["--length", "-5"], "--length must be in"),
    ],
)
def test_bad_comparisons_are_one_line(analysed, fashion_dir, capsys, argv, message):
    before = sorted(p.name for p in (analysed.path / "analysis").iterdir())
    full = ["analyze", str(analysed.path), "--compare-methods", "--compare-n", "4",
            "--data-dir", str(fashion_dir), "--no-progress", *argv]  # fmt: skip
    assert cli.main(full) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in (analysed.path / "analysis").iterdir()) == before


def test_compare_methods_needs_an_analysis(tmp_path, small_split, capsys):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert cli.main(["analyze", str(run.path), "--compare-methods", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs a finished analysis" in err and "ganscope analyze" in err
    assert not (run.path / "analysis").exists()


def test_compare_methods_refuses_a_conditional_run(tmp_path, small_split, capsys):
    model = ModelConfig("mlp", conditioning="projection")
    config = RunConfig(model=model, train=TrainConfig(epochs=1, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert cli.main(["analyze", str(run.path), "--compare-methods", "--no-progress"]) == 2
    assert "conditional run" in capsys.readouterr().err


def _row(cls: int, method: str, flip: float, keep_change: float | None = 0.0) -> dict:
    return {"class": f"c{cls}", "class_index": cls, "method": method, "direction": method,
            "length": 10.0, "flip": flip, "side_tv": 0.3, "off_target": 0.1, "fid_drift": 5.0,
            "keep_change": keep_change}  # fmt: skip


def test_the_paragraph_is_computed_from_the_rows():
    rows = [_row(0, "dims", 0.2), _row(0, "boundary", 0.9, 0.2), _row(0, "conditional", 0.8),
            _row(1, "dims", 0.1), _row(1, "boundary", 0.7, 0.01),
            _row(1, "conditional", 0.95)]  # fmt: skip
    record = {"rows": rows, "length": 10.0}
    table = methods_text.method_table(record)
    assert table["boundary"]["wins"] == 1 and table["conditional"]["won"] == [1]
    assert table["dims"]["flip"] == pytest.approx(0.15) and table["boundary"]["kept"] == 1
    paragraph = methods_text.methods_paragraph(record, "en", ["Coat", "Bag"])
    assert "The classifier boundary wins on flip rate for 1 of 2 classes (Coat)." in paragraph
    assert "The boundary keeping the nearest class wins on flip rate for 1 of 2 classes (Bag)" in (
        paragraph
    )
    assert "within ±0.05 for 2 of 2 classes; the plain boundary does for 1." in paragraph
    assert "flips 15% of the images on average against 88%" in paragraph
    assert "分类器边界" in methods_text.methods_paragraph(record, "zh", ["大衣", "包"])


def test_the_report_has_the_comparison_and_reuses_it(analysed, tmp_path, fashion_dir, monkeypatch):
    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))  # the run was trained on a split
    profile = reproduce.Profile("tiny", eval_n=200, analysis_n=16, analysis_dims=("1", "20"),
                                sefa=2, boundary_n=2000, compare_n=24)  # fmt: skip
    options = reproduce.ReportOptions(out=str(tmp_path / "report"), progress=False)
    paths = reproduce.write_report([analysed], options, profile=profile)
    markdown = paths["md"].read_text()
    assert "#### Which method moves which garment best" in markdown
    saved = json.loads((analysed.path / "analysis" / "methods.json").read_text())
    assert saved["compare_n"] == 24
    for method, entry in methods_text.method_table(saved).items():
        assert f"| {entry['wins']}/{entry['scored']} | {entry['flip']:.2f} |" in markdown, method
    assert methods_text.methods_paragraph(saved, "en", load_split_classes()) in markdown
    before = (analysed.path / "analysis" / "methods.json").stat().st_mtime_ns
    reproduce.write_report([analysed], options, profile=profile)
    assert (analysed.path / "analysis" / "methods.json").stat().st_mtime_ns == before


def load_split_classes() -> list[str]:
    from ganscope.data import get_dataset

    return list(get_dataset("fashion-mnist").class_names("en"))


def test_the_python_api_returns_the_table_as_data(analysed, fashion_dir):
    import ganscope

    result = ganscope.compare_methods(
        analysed, compare_n=8, lengths=(10.0,), towards=("bag", "1"), data_dir=str(fashion_dir),
        progress=False,
    )  # fmt: skip
    assert {r["class"] for r in result["rows"]} == {"Bag", "Trouser"}
    assert {w["class"] for w in result["winners"]} <= {"Bag", "Trouser"}
    assert result["compare_n"] == 8 and result["markdown"].startswith("# Directions towards")
    saved = json.loads((analysed.path / "analysis" / "methods.json").read_text())
    assert saved["rows"] == result["rows"]
