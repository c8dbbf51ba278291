from types import SimpleNamespace

import pytest

from ganscope import comparison, report
from ganscope.config import ModelConfig, TrainConfig
from ganscope.data import get_dataset
from ganscope.document import Heading, Table
from ganscope.metrics import REPORT_METRICS
from ganscope.presets import with_preset

CLASSES = get_dataset("fashion-mnist").classes


def summary(model, preset, seed, fid, recall, histogram, seconds=(5.0,)):
    train = with_preset(TrainConfig(seed=seed, preset=preset), model)
    run = SimpleNamespace(
        config=SimpleNamespace(model=ModelConfig(model), train=train), imported=False
    )
    evaluation = {key: 0.5 for key in REPORT_METRICS}
    evaluation.update(fid=fid, recall=recall, class_histogram=list(histogram))
    epochs = [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]
    return report.RunSummary(run, epochs, evaluation, None, b"png")


COLLAPSED = [50, 0, 300, 100, 200, 100, 150, 100, 0, 0]  # 1,000 samples, 3 classes missing
SPREAD = [100, 20, 130, 100, 100, 100, 150, 100, 100, 100]


def test_the_paragraph_is_computed_from_the_numbers():
    seed = summary("mlp", "seed", 0, 30.0, 0.02, COLLAPSED, seconds=(4.0, 6.0))
    improved = summary("mlp", "improved", 0, 15.0, 0.2, SPREAD, seconds=(6.0, 6.0))
    assert (seed.preset, improved.preset) == ("seed", "improved")
    table = report.metric_table([seed, improved])
    text = comparison.compare_sentence("mlp", [seed], [improved], table, "en")
    assert "the MLP GAN's FID goes from 30.000 to 15.000 (0.50x)" in text
    assert "its recall from 0.020 to 0.200 (10.00x)" in text
    assert "rarest class from 0.0% to 2.0% of the samples" in text
    # Better: fid (lower) and recall (higher); the other metrics are equal.
    assert f"better on 2 of {len(REPORT_METRICS)} metrics" in text
    assert "an epoch takes 1.20x the time (5.0 s to 6.0 s)" in text


def test_a_ratio_to_zero_is_not_made_up():
    seed = summary("mlp", "seed", 0, 30.0, 0.0, COLLAPSED)
    improved = summary("mlp", "improved", 0, 15.0, 0.2, SPREAD)
    text = comparison.compare_sentence(
        "mlp", [seed], [improved], report.metric_table([seed, improved]), "en"
    )
    assert "0.000 to 0.200 (no ratio: the first is 0)" in text


def test_class_shares_and_the_rarest_class_average_over_seeds():
    group = [summary("mlp", "seed", s, 30.0, 0.1, h) for s, h in ((0, COLLAPSED), (1, SPREAD))]
    shares = comparison.class_shares(group)
    assert shares[1] == pytest.approx((0.0 + 0.02) / 2)
    assert shares[6] == pytest.approx(0.15)
    assert sum(shares) == pytest.approx(1.0)
    assert [comparison.rarest_share(s) for s in group] == [0.0, 0.02]


def test_runs_of_other_recipes_are_never_averaged_together():
    flags = {"ema": 0.9, "loss": "hinge"}
    custom = summary("mlp", "seed", 0, 20.0, 0.1, SPREAD)
    custom.run.config.train = TrainConfig(seed=0, **flags)
    other = summary("mlp", "seed", 1, 40.0, 0.1, SPREAD)
    other.run.config.train = TrainConfig(seed=1, ema=0.5)
    plain = summary("mlp", "seed", 2, 30.0, 0.1, SPREAD)
    table = report.metric_table([custom, other, plain])
    assert table[("mlp", "loss=hinge, ema=0.9")]["fid"] == (20.0, None)
    assert table[("mlp", "ema=0.5")]["fid"] == (40.0, None)
    assert custom.label == "mlp-loss-hinge-ema-0.9-seed0"  # a file name
    assert report.group_name(custom.group, "en") == "MLP GAN, loss=hinge, ema=0.9"


def test_only_models_with_several_presets_are_compared():
    summaries = [
        summary("mlp", "seed", 0, 30.0, 0.02, COLLAPSED),
        summary("mlp", "seed", 1, 32.0, 0.03, COLLAPSED),
        summary("mlp", "improved", 0, 15.0, 0.2, SPREAD),
        summary("cnn", "seed", 0, 12.0, 0.3, SPREAD),
    ]
    blocks = comparison.preset_blocks(summaries, report.metric_table(summaries), "en", CLASSES)
    headings = [b.text for b in blocks if isinstance(b, Heading)]
    assert headings == ["8. Training presets side by side", "MLP GAN"]
    tables = {b.id: b for b in blocks if isinstance(b, Table)}
    assert tables["presets-mlp"].headers == ("metric", "seed preset", "improved preset")
    fid = next(row for row in tables["presets-mlp"].rows if row[0] == "fid ↓")
    assert fid == ("fid ↓", "31.000 ± 1.414", "15.000")  # the seed preset over its 2 seeds
    assert tables["classes-mlp"].rows[1] == ("Trouser", "0.0%", "2.0%")
