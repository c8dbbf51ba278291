import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import keep_artefact
from ganscope import atomic, cli, presets, reproduce
from ganscope.analysis import analyze_run
from ganscope.errors import GanscopeError
from ganscope.reproduce import ReportOptions
from ganscope.runs import load_run

TINY = reproduce.Profile(
    "tiny",
    epochs=1,
    limit=256,
    eval_samples=100,
    eval_n=200,
    analysis_n=8,
    analysis_dims=(1, 20, 50, 60, 70, 90),
    sefa=1,
    boundary_n=500,
    compare_n=16,
)


def _reproduce(out, fashion_dir, profile):
    return reproduce.reproduce(
        out=out, seeds=[0], device="cpu", profile=profile, data_dir=str(fashion_dir), progress=False
    )


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, fashion_dir):
    out = tmp_path_factory.mktemp("repro") / "out"
    paths = _reproduce(out, fashion_dir, TINY)
    return out, paths


def test_reproduce_writes_both_reports(reproduced):
    out, paths = reproduced
    page = paths["html"].read_text()
    assert paths["html"] == out / "report.html" and paths["md"].is_file()
    assert "<table id='metrics'>" in page and "<table id='setup'>" in page
    assert page.count("data:image/png;base64,") >= 10 and "data:image/gif;base64," in page
    assert "src='http" not in page and 'src="http' not in page  # nothing from the network
    for section in (
        "1. Set-up",
        "2. Architectures",
        "3. Training curves",
        "4. Random samples",
        "5. Adjusting the latent vector",
        "6. Metrics",
        "7. Observations",
    ):
        assert section in page
    assert "(fc1): Linear(in_features=100, out_features=6272, bias=True)" in page
    assert "Lowering dimension" in page or "no reliable effect" in page
    assert "is better on fid" in page
    markdown = paths["md"].read_text()
    assert "| fid ↓ |" in markdown and "(report_files/cnn-seed0-figures-losses.png)" in markdown
    assert (out / "report_files" / "cnn-seed0-figures-losses.png").is_file()
    assert str(out.resolve()) not in markdown  # relative links only: the pair can move
    # --eval-every 1 during training: one quality record per epoch in the metrics log.
    records = [
        json.loads(line)
        for line in (out / "runs" / "cnn-seed0" / "metrics.jsonl").read_text().splitlines()
    ]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1] and evals[0]["n"] == 100
    assert evals[0]["fid"] > 0 and 0 <= evals[0]["precision"] <= 1


def test_reproduce_reuses_finished_work(reproduced, fashion_dir):
    out, _ = reproduced
    checkpoint = out / "runs" / "cnn-seed0" / "checkpoints" / "last.pt"
    analysis = out / "runs" / "cnn-seed0" / "analysis" / "dims.json"
    before = (checkpoint.stat().st_mtime_ns, analysis.stat().st_mtime_ns)
    _reproduce(out, fashion_dir, TINY)
    assert (checkpoint.stat().st_mtime_ns, analysis.stat().st_mtime_ns) == before


def test_interrupted_reproduction_continues(tmp_path, fashion_dir):
    from ganscope.trainer import train

    out = tmp_path / "out"
    two_epochs = dataclass_replace(TINY, epochs=2)
    config = reproduce.run_config("mlp", 0, two_epochs, "cpu", str(fashion_dir))

    def stop_after_first(run, state, record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, out / "runs" / "mlp-seed0", callbacks=[stop_after_first], progress=False)
    _reproduce(out, fashion_dir, two_epochs)
    records = [
        json.loads(line)
        for line in (out / "runs" / "mlp-seed0" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]


def test_presets_side_by_side(reproduced, tmp_path, fashion_dir):
    out = tmp_path / "out"
    # The seed preset's run is the module's (reused, as a reproduction reuses finished work).
    shutil.copytree(reproduced[0] / "runs" / "mlp-seed0", out / "runs" / "mlp-seed0")
    paths = reproduce.reproduce(
        out=out,
        seeds=[0],
        models=["mlp"],
        presets=["seed", "improved"],
        device="cpu",
        profile=TINY,
        data_dir=str(fashion_dir),
        progress=False,
    )
    seed, improved = (load_run(out / "runs" / name) for name in ("mlp-seed0", "mlp-improved-seed0"))
    assert not (out / "runs" / "cnn-seed0").exists()  # --models mlp
    assert seed.config.train.ema == 0 and not seed.config.train.spectral_norm
    assert improved.config.train.ema == 0.999 and improved.config.train.spectral_norm
    page = paths["html"].read_text()
    section = page[page.index("8. Training presets side by side") :]
    a, b = (run.find_evaluation(n=TINY.eval_n) for run in (seed, improved))
    # The paragraph is computed from the two evaluations' numbers.
    assert f"FID goes from {a['fid']:.3f} to {b['fid']:.3f} ({b['fid'] / a['fid']:.2f}x)" in section
    assert "recall from" in section and "an epoch takes" in section
    assert "<table id='presets-mlp'>" in section and "<table id='readings-mlp'>" in section
    classes = section[section.index("<table id='classes-mlp'>") :].split("</table>")[0]
    for histogram in (a["class_histogram"], b["class_histogram"]):
        assert f"<td>{histogram[1] / sum(histogram):.1%}</td>" in classes  # trousers
    assert section.count("data:image/png;base64,") == 2  # a grid per preset
    assert "MLP GAN, improved preset, seed 0" in page  # captions say which run is which
    assert "GAN is better on" not in page  # the models' comparison, not the presets'
    assert "MLP GAN, improved preset (seed 0): " in page  # observations name the preset
    assert "recipe: improved preset" in page and "ema=0.999, spectral_norm=True" in page
    zh = reproduce.write_report(
        [seed, improved], ReportOptions(out=str(tmp_path / "zh"), lang="zh", progress=False)
    )
    section = zh["html"].read_text().split("8. 训练预设对比")[1]
    for english in ("rarest", "seconds", "<th>class", "<th>dimension", "FID goes", " preset"):
        assert english not in section, english


def test_presets_refused_before_anything_trains(tmp_path, fashion_dir, monkeypatch):

    monkeypatch.setitem(presets.PRESETS, "mlp-only", {"mlp": {"ema": 0.9}})
    with pytest.raises(GanscopeError, match="no recipe for the cnn GAN.*--models mlp leaves"):
        reproduce.reproduce(
            out=tmp_path / "out",
            presets=["seed", "mlp-only"],
            device="cpu",
            profile=TINY,
            data_dir=str(fashion_dir),
            progress=False,
        )
    assert not (tmp_path / "out").exists()


def dataclass_replace(profile, **changes):
    import dataclasses

    return dataclasses.replace(profile, **changes)


def test_report_in_chinese_translates_every_table(reproduced, tmp_path):
    out, _ = reproduced
    runs = [load_run(out / "runs" / name) for name in ("mlp-seed0", "cnn-seed0")]
    paths = reproduce.write_report(
        runs, ReportOptions(out=str(tmp_path / "zh"), lang="zh", progress=False), profile=TINY
    )
    page = paths["html"].read_text()
    assert "实验设置" in page and "调整随机数" in page and "<table id='metrics'>" in page
    setup = page[page.index("<table id='setup'>") :].split("</table>")[0]
    for english in ("dataset", "optimiser", "objective", "training time", "versions"):
        assert english not in setup, english
    assert "数据集" in setup and "优化器" in setup


def test_markdown_report_keeps_its_figures_when_moved(reproduced, tmp_path):
    out, paths = reproduced
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("runs"))  # without the run folders
    markdown = (moved / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) >= 10
    assert all((moved / link).is_file() for link in links), links


def test_report_uses_the_evaluation_with_most_samples(reproduced, tmp_path):
    out, _ = reproduced
    run = load_run(out / "runs" / "mlp-seed0")
    small = run.find_evaluation(n=TINY.eval_n)
    # The same run evaluated with more samples: file names sort "..._n1000" before "..._n200".
    larger = {**small, "n": 1000, "fid": 1.2345}
    atomic.write_json(run.evaluation_path(small["epoch"], 0, 1000), larger)
    try:
        assert reproduce.ensure_evaluated(run, None, progress=False)["fid"] == 1.2345
        assert reproduce.ensure_evaluated(run, TINY.eval_n, progress=False)["n"] == TINY.eval_n
    finally:
        run.evaluation_path(small["epoch"], 0, 1000).unlink()


def test_a_partial_analysis_is_not_reused_as_a_full_one(reproduced, capsys):
    out, _ = reproduced
    run = load_run(out / "runs" / "mlp-seed0")
    wanted = TINY.analysis("en", progress=True)
    assert reproduce.ensure_analysed(run, wanted) == run.analysis_record()  # same header: reused
    assert "no analysis to reuse" not in capsys.readouterr().err
    analyze_run(run, dims=("20", "50"), deltas=(5.0,), n=8, sefa=0, progress=False)
    record = reproduce.ensure_analysed(run, wanted)
    assert "differs in dims, deltas, sefa" in capsys.readouterr().err
    assert [r["dim"] for r in record["rows"]] == [1, 20, 50, 60, 70, 90]
    assert record["deltas"] == [10.0] and len(record["sefa_rows"]) == 1


def test_settings_conflict_and_bad_input(reproduced, fashion_dir, capsys):
    out, _ = reproduced
    other = dataclass_replace(TINY, epochs=3, limit=320)
    with pytest.raises(GanscopeError, match="other settings"):
        _reproduce(out, fashion_dir, other)
    assert cli.main(["reproduce", "--lang", "fr", "--out", str(out)]) == 2
    assert cli.main(["reproduce", "--seeds", "1", "1", "--out", str(out)]) == 2
    assert cli.main(["report", "/no/such/run"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_report_opens_in_a_browser(reproduced):
    playwright = pytest.importorskip("playwright.sync_api")
    out, paths = reproduced
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(paths["html"].resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])"
        )
        assert len(images) >= 10
        assert all(complete and width > 0 for complete, width in images)
        assert page.locator("table#metrics tr").count() >= 5
        page.screenshot(path=str(out / "report-screenshot.png"))
        browser.close()
    assert errors == []
    assert (out / "report-screenshot.png").stat().st_size > 10_000
    keep_artefact(out / "report-screenshot.png")


def test_conditional_beside_unconditional(reproduced, tmp_path, fashion_dir):
    import dataclasses

    out = tmp_path / "out"
    shutil.copytree(reproduced[0] / "runs" / "mlp-seed0", out / "runs" / "mlp-seed0")
    profile = dataclasses.replace(TINY, cas_per_class=20, cas_epochs=1)
    paths = reproduce.reproduce(
        out=out,
        seeds=[0],
        models=["mlp"],
        conditional=["projection"],
        device="cpu",
        profile=profile,
        data_dir=str(fashion_dir),
        progress=False,
    )
    plain, told = (load_run(out / "runs" / n) for n in ("mlp-seed0", "mlp-projection-seed0"))
    assert told.config.model.conditioning == "projection"
    record = told.find_evaluation(n=TINY.eval_n)
    assert record["cas_samples_per_class"] == 20 and record["cas_epochs"] == 1
    assert "cas" not in plain.find_evaluation(n=TINY.eval_n)
    page = paths["html"].read_text()
    section = page[page.index("9. Asking for a garment") :]
    # the paragraph is computed from the records' numbers
    assert f"calls {record['label_agreement']:.1%} of the samples the asked class" in section
    assert f"right on {record['cas']:.1%} of the real test images" in section
    assert "<table id='conditional-mlp-seed'>" in section
    per_class = section[section.index("<table id='conditional-classes-mlp-seed'>") :]
    agreement = record["label_agreement_per_class"][7]
    assert "<td>Sneaker</td>" in per_class and f"<td>{agreement:.1%}</td>" in per_class
    assert section.count("data:image/png;base64,") == 2  # the same z: a row, a row per class
    assert "115,344" in section  # the conditional MLP G's parameters
    assert "8. Training presets side by side" not in page  # one preset: no such section
    zh = reproduce.write_report(
        [plain, told], ReportOptions(out=str(tmp_path / "zh"), lang="zh", progress=False)
    )
    section = zh["html"].read_text().split("9. 指定服装类别")[1]
    for english in ("the classifier calls", "agreement:", "network", "classifier on real"):
        assert english not in section, english
