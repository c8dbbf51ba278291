import pytest
import torch

from ganscope import bench, devices, trainer, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_fast_path_computes_the_textbook_function(tmp_path, small_split, model):
    # fp32 on the CPU: ganscope's loop (device-resident data, no per-step sync, channels_last
    # for the CNN) must give the textbook loop's losses for the same seed.
    config = RunConfig(
        model=ModelConfig(model),
        train=TrainConfig(epochs=1, device="cpu", precision="fp32", seed=2),
    )
    textbook, speed = bench.textbook_loop(config, small_split, steps=5)
    assert speed > 0
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    fast = [[r[key] for key in training.STEP_STATS] for r in run.metrics("step")]
    assert len(fast) == len(textbook) == 5
    fast, textbook = torch.tensor(fast), torch.tensor(textbook)
    if model == "mlp":  # the same kernels: equal to rounding for every step
        torch.testing.assert_close(fast, textbook, rtol=0, atol=1e-5)
    else:
        # channels_last picks other convolution kernels; their rounding differences (~1e-7)
        # are amplified by Adam over the steps, as any change of kernels would be.
        torch.testing.assert_close(fast[:2], textbook[:2], rtol=0, atol=1e-5)
        torch.testing.assert_close(fast, textbook, rtol=0, atol=2e-3)


def test_bf16_path_runs_where_supported(tmp_path, small_split):
    if not devices.native_bf16(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    config = RunConfig(
        model=ModelConfig("cnn"), train=TrainConfig(epochs=1, device="cpu", precision="bf16")
    )
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert run.metrics("epoch")[0]["precision"] == "bf16"


def test_benchmark_reports_both_loops(small_split):
    result = bench.benchmark("mlp", small_split, steps=5, device="cpu", repeats=2)
    assert len(result["textbook_trials"]) == len(result["ganscope_trials"]) == 2
    assert result["textbook_img_per_s"] == pytest.approx(
        sum(result["textbook_trials"]) / 2, abs=0.1
    )  # the median of two trials
    assert result["textbook_img_per_s"] > 0 and result["ganscope_img_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["ganscope_img_per_s"] / result["textbook_img_per_s"], abs=0.006
    )  # rounded to two decimals
    assert result["ganscope_peak_mb"] > 0
    assert result["cuda_graph"] is False  # a CPU never captures
