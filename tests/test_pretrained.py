"""``pretrained``: the runs shipped in the package, what ``pretrained:NAME`` opens, and that
what is shipped is what the command in its record produces."""

from __future__ import annotations

import json

import pytest
import torch

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


@needs_shipped
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SHIPPED if n == "mlp-seed"])
def test_what_is_shipped_is_what_its_command_trains(name, tmp_path, fashion_dir, monkeypatch):
    """Retrain with the command in the record: every shipped snapshot equal bit for bit (the
    others, which train for minutes, by benchmarks/pretrained.py); the
    shipped evaluation equal (to 1e-6: another thread count sums in another order) when
    evaluated again with its seed and size."""
    record = pretrained.record(name)
    argv = record["command"].split()[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(record["threads"])  # as it was trained: sums in the same order
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    shipped = pretrained.shipped_root() / name / "checkpoints"
    for snapshot in record["snapshots_sha256"]:
        ours = torch.load(shipped / snapshot, weights_only=True)["generator"]
        again = torch.load(tmp_path / "again" / "checkpoints" / snapshot, weights_only=True)
        assert all(torch.equal(again["generator"][k], v) for k, v in ours.items()), snapshot
    run = load_run(f"pretrained:{name}")
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
