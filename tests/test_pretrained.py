"""``pretrained``: the runs shipped in the package, what ``pretrained:NAME`` opens, and that
what is shipped is what the command in its record produces."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from conftest import xdist_threads
from ganscope import pretrained
from ganscope.cli import main
from ganscope.errors import GanscopeError
from ganscope.evaluation import evaluate_run
from ganscope.runs import load_run

SHIPPED = pretrained.names()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="no pretrained runs in this checkout")


@pytest.fixture(autouse=True)
def user_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@needs_shipped
def test_a_pretrained_name_opens_a_copy_in_the_user_s_folder(
    user_home, tmp_path, monkeypatch, capsys
):
    name = SHIPPED[0]
    run = load_run(f"pretrained:{name}")
    assert run.path == user_home / "pretrained" / name and run.snapshots_only
    assert run.latest_epoch() == pretrained.record(name)["epochs"]
    monkeypatch.delenv("GANSCOPE_DATA_DIR", raising=False)  # offline, no data
    monkeypatch.chdir(tmp_path)
    assert main(["sample", f"pretrained:{name}", "--n", "64"]) == 0
    assert (user_home / "pretrained" / name / "samples" / "sample_seed0_n64.png").is_file()
    assert not (pretrained.shipped_root() / name / "samples" / "sample_seed0_n64.png").exists()
    capsys.readouterr()
    assert main(["pretrained", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == [f"pretrained:{n}" for n in SHIPPED]


def test_an_unknown_name_is_one_line(capsys):
    assert main(["sample", "pretrained:gpt"]) == 2
    assert "unknown pretrained run 'gpt'" in capsys.readouterr().err


def _parting(shipped: list[dict], again: list[dict]) -> tuple[int, float] | None:
    """The first step whose logged losses differ, and by how much (relative), or None."""
    for index, (ours, theirs) in enumerate(zip(shipped, again, strict=True)):
        if ours != theirs:
            keys = ("loss_D", "loss_G", "D(x)", "D(G(z))")
            return index, max(abs(ours[k] - theirs[k]) / abs(ours[k]) for k in keys)
    return None


@needs_shipped
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SHIPPED if n == "mlp-seed"])
def test_what_is_shipped_is_what_its_command_trains(name, tmp_path, fashion_dir, monkeypatch):
    """Retrain with the command in the record: every shipped snapshot equal bit for bit (the
    others, which train for minutes, by benchmarks/pretrained.py) where this CPU sums as the
    one that trained it did. A CPU may order its sums otherwise (mlp-seed retrained bit for
    bit on the AMD EPYC that trained it and on an Intel Xeon, but on a later EPYC its log
    parts from the shipped one at step 15, by 9e-8): there the two runs log equal losses
    until a step where they part by rounding alone (< 1e-6), and stay near each other (each
    epoch's mean losses within 10%). The shipped evaluation equal (to 1e-6: another thread
    count sums in another order) when evaluated again with its seed and size."""
    record = pretrained.record(name)
    argv = record["command"].split()[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))
    threads = torch.get_num_threads()
    # as it was trained, sums in the same order; a pytest-xdist worker keeps its share of the
    # cores (conftest), since two torch threads beside another worker thrash 2 cores
    torch.set_num_threads(xdist_threads() or record["threads"])
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    run, again = load_run(f"pretrained:{name}"), load_run(tmp_path / "again")
    parting = _parting(run.metrics("step"), again.metrics("step"))
    if parting is None:  # the same sums: the same weights, snapshot for snapshot
        for snapshot in record["snapshots_sha256"]:
            ours = torch.load(run.path / "checkpoints" / snapshot, weights_only=True)
            theirs = torch.load(again.path / "checkpoints" / snapshot, weights_only=True)
            equal = (torch.equal(theirs["generator"][k], v) for k, v in ours["generator"].items())
            assert all(equal), snapshot
    else:
        step, by = parting
        assert step > 0 and by < 1e-6, f"the runs part at step {step + 1} by {by:.2e}"
        for ours, theirs in zip(run.metrics("epoch"), again.metrics("epoch"), strict=True):
            assert theirs["loss_D"] == pytest.approx(ours["loss_D"], rel=0.1)
            assert theirs["loss_G"] == pytest.approx(ours["loss_G"], rel=0.1)
        warnings.warn(
            f"{name}: this CPU sums otherwise than the one that trained it (the runs part at "
            f"step {step + 1} by {by:.1e}); the snapshots were not compared bit for bit",
            stacklevel=1,
        )
    kept = run.find_evaluation(epoch=record["epochs"], n=record["evaluation_n"])
    fresh = evaluate_run(run, n=kept["n"], seed=kept["seed"], progress=False)
    assert fresh["classifier_sha256"] == kept["classifier_sha256"]
    for key in ("fid", "kid", "precision", "recall", "coverage"):  # thread counts reorder sums
        assert fresh[key] == pytest.approx(kept[key], rel=1e-6, abs=1e-9), key


def test_serve_without_a_run_folder_takes_the_shipped_ones(monkeypatch):
    if not SHIPPED:
        with pytest.raises(GanscopeError, match="ships no pretrained runs"):
            pretrained.default_runs()
        return
    runs = pretrained.default_runs()
    assert sorted(runs) == sorted(f"pretrained:{n}" for n in SHIPPED)
    order = [n for n in pretrained.SERVE_ORDER if n in SHIPPED]
    assert runs[: len(order)] == [f"pretrained:{n}" for n in order]
