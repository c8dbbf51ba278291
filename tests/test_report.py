"""The report's numbers and sentences (``report``) and its two renderings (``document``)."""

import pytest

from ganscope import report
from ganscope.config import ModelConfig, TrainConfig
from ganscope.data import get_dataset
from ganscope.metrics import REPORT_METRICS, format_metric


def test_plateau_epoch():
    def epochs(values):
        return [{"epoch": i + 1, "loss_D": d, "loss_G": g} for i, (d, g) in enumerate(values)]

    assert (
        report.plateau_epoch(epochs([(1.3, 0.7), (0.9, 1.2), (0.8, 1.6), (0.8, 1.62), (0.79, 1.6)]))
        == 3
    )
    assert report.plateau_epoch(epochs([(1, 1)] * 2)) is None
    rising = epochs([(1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (1.0, 4.0)])
    assert report.plateau_epoch(rising) == 4


def test_missing_classes():
    histogram = [100] * 8 + [1, 0]
    evaluation = {"class_histogram": histogram}
    assert report.missing_classes(evaluation, get_dataset("fashion-mnist").classes) == [
        "Bag",
        "Ankle boot",
    ]


def test_metric_table_mean_and_std_over_seeds():
    from types import SimpleNamespace

    def summary(model, seed, fid):
        run = SimpleNamespace(
            config=SimpleNamespace(model=ModelConfig(model), train=TrainConfig(seed=seed)),
            imported=False,
        )
        evaluation = {key: 0.5 for key in REPORT_METRICS}
        evaluation["fid"] = fid
        return report.RunSummary(run, [], evaluation, None, b"")

    table = report.metric_table(
        [summary("mlp", 0, 10.0), summary("mlp", 1, 14.0), summary("cnn", 0, 5.0)]
    )
    assert table[("mlp", "seed")]["fid"] == (12.0, pytest.approx(2.8284271))
    assert table[("cnn", "seed")]["fid"] == (5.0, None)
    assert format_metric(12.0, 2.8284271, "fid") == "12.000 ± 2.828"
    lines = report.observations([], table, "en", get_dataset("fashion-mnist").classes)
    assert "CNN GAN is better on fid: 5.000 vs 12.000." in lines
