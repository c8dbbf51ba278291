"""CUDA graph capture of the training step.

A CPU has no CUDA graphs, so most tests drive the capture bookkeeping through an emulation
that behaves like CUDA where it matters here: capturing records the step without running it,
and a replay runs the recorded step on whatever the static input buffers hold. The last test
captures for real and runs only where a GPU is present.
"""

import dataclasses

import pytest
import torch

from ganscope import devices, trainer, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.cuda_graph import CapturedStep
from ganscope.state import init_state


class EmulatedGraphs:
    """A CPU stand-in for CUDA graphs. Like a real graph, a replay does not see the host:
    the training state's Python numbers (``step``, ``epoch``, ``noise_std``) read inside the
    step are those of the moment of capture, so a value the step takes from the host instead
    of from its device inputs is frozen, as on a GPU. ``watch(monkeypatch)`` lets it see the
    state the loop makes its step for."""

    FROZEN = ("step", "epoch", "noise_std")

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.eager_calls = self.captures = self.replays = 0
        self.state = None

    def watch(self, monkeypatch) -> "EmulatedGraphs":
        make_step = training.make_step

        def spy(state, images, device, backend=None, labels=None):
            self.state = state
            return make_step(state, images, device, backend, labels)

        monkeypatch.setattr(training, "make_step", spy)
        monkeypatch.setattr(training, "_graph_backend", lambda *args, **kwargs: self)
        return self

    def eager(self, body):
        self.eager_calls += 1
        return body()

    def capture(self, body, like):
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        output = torch.full_like(like, float("nan"))  # a graph's output before any replay
        frozen = {k: getattr(self.state, k) for k in self.FROZEN} if self.state else {}

        def replay():
            self.replays += 1
            live = {k: getattr(self.state, k) for k in frozen}
            for key, value in frozen.items():
                setattr(self.state, key, value)
            try:
                output.copy_(body())
            finally:
                for key, value in live.items():
                    setattr(self.state, key, value)

        return replay, output


def _config(model="mlp", epochs=2, precision="fp32", **train):
    return RunConfig(
        model=ModelConfig(model),
        train=TrainConfig(epochs=epochs, device="cpu", precision=precision, seed=3, **train),
    )


def _step_stats(run):
    return [[r[key] for key in training.STEP_STATS] for r in run.metrics("step")]


def test_the_graph_is_on_by_default_and_steps_it_cannot_take_run_eagerly_with_a_note(
    capsys, monkeypatch
):
    """--cuda-graph is on by default; with instance noise or dropout the step runs eagerly
    and says so in one plain line, not a warning; the improved presets' --ema and --r1-gamma
    are captured (gpu_check.sh passed on an H200 on 2026-12-04); on a CPU nothing is said."""
    assert TrainConfig().cuda_graph is True
    monkeypatch.setattr(training, "CudaGraphBackend", lambda device: ("graphs on", device))
    cuda = torch.device("cuda")  # no GPU needed: the recipe is checked before any capture
    for recipe_flags, why in (
        ({"instance_noise": 0.1}, "--instance-noise"),
        ({"d_dropout": 0.3}, "--d-dropout"),
    ):
        assert training._graph_backend(_config(**recipe_flags), cuda, progress=True) is None
        note = capsys.readouterr().err
        assert note.startswith("CUDA graph: not used with") and "eagerly" in note
        assert why in note and "warning" not in note.lower()
    assert training._graph_backend(_config(d_dropout=0.3), cuda, progress=False) is None
    improved = {"ema": 0.999, "r1_gamma": 1.0, "lr_d": 1.2e-3}
    for preset in ({}, improved, {"ema": 0.999}, {"spectral_norm": True}):
        assert training._graph_backend(_config(**preset), cuda) == ("graphs on", cuda)
    assert training._graph_backend(_config(), torch.device("cpu")) is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("model, precision", [("mlp", "fp32"), ("cnn", "fp32"), ("mlp", "bf16")])
def test_captured_loop_trains_exactly_like_the_eager_loop(
    tmp_path, small_split, model, precision, monkeypatch
):
    # bf16: the same autocast in both loops (a capture cannot keep autocast's cast cache; an
    # eager step that kept it summed a weight's gradients in bf16, not fp32, and drifted off
    # the captured run by about one Adam step per weight in 10 steps, seen on an H100).
    monkeypatch.setattr(devices, "native_bf16", lambda device: True)  # emulated on any CPU
    config = _config(model, precision=precision)
    eager = trainer.train(config, tmp_path / "eager", split=small_split, progress=False)

    graphs = EmulatedGraphs().watch(monkeypatch)
    captured = trainer.train(config, tmp_path / "captured", split=small_split, progress=False)

    # 2 epochs x 5 steps: 3 eager warm-up steps, one capture, 7 replays; every call one step.
    assert (graphs.eager_calls, graphs.captures, graphs.replays) == (3, 1, 7)
    assert _step_stats(captured) == _step_stats(eager)
    assert [r["cuda_graph"] for r in captured.metrics("epoch")] == [True, True]
    assert [r["cuda_graph"] for r in eager.metrics("epoch")] == [False, False]
    expected, got = state_tensors(eager), state_tensors(captured)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)


#: The improved presets' kinds of step: a moving average (a weight that changes every step)
#: with spectral norm, and with lazy R1 every 2nd step (two graphs, with and without it).
IMPROVED = [
    ("mlp", {"ema": 0.999, "spectral_norm": True}),
    ("cnn", {"ema": 0.999, "r1_gamma": 1.0, "r1_every": 2, "lr": 6e-4, "lr_d": 1.2e-3}),
]


@pytest.mark.parametrize(
    "model, recipe_flags",
    [*IMPROVED, ("mlp", {"ema": 0.9999, "ema_ramp": 3.0})],
    ids=["mlp-ema-sn", "cnn-ema-r1", "mlp-ema-ramp"],
)
def test_improved_recipes_are_captured_and_train_exactly_like_the_eager_loop(
    tmp_path, small_split, model, recipe_flags, monkeypatch
):
    config = _config(model, **recipe_flags)
    eager = trainer.train(config, tmp_path / "eager", split=small_split, progress=False)
    graphs = EmulatedGraphs().watch(monkeypatch)
    captured = trainer.train(config, tmp_path / "captured", split=small_split, progress=False)

    if "r1_gamma" in recipe_flags:
        # Steps 0, 2, ... 8 with R1, 1, 3, ... 9 without: each form warms up 3 times, is
        # captured on its 4th call and replayed there and on its 5th.
        assert (graphs.eager_calls, graphs.captures, graphs.replays) == (6, 2, 4)
        assert [r["cuda_graph"] for r in captured.metrics("epoch")] == [False, True]
    else:
        assert (graphs.eager_calls, graphs.captures, graphs.replays) == (3, 1, 7)
        assert [r["cuda_graph"] for r in captured.metrics("epoch")] == [True, True]
    assert _step_stats(captured) == _step_stats(eager)
    expected, got = state_tensors(eager), state_tensors(captured)
    assert expected.keys() == got.keys() and any(k.startswith("generator_ema") for k in got)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)

    # Resumed from epoch 1 with graphs, training goes on from the same step of the table
    # of average weights and the same R1 phase.
    EmulatedGraphs().watch(monkeypatch)
    first = trainer.train(
        _config(model, epochs=1, **recipe_flags),
        tmp_path / "part",
        split=small_split,
        progress=False,
    )
    resumed = trainer.resume(first.path, epochs=2, split=small_split, progress=False)
    assert _step_stats(resumed) == _step_stats(eager)
    for name, tensor in state_tensors(resumed).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)


def state_tensors(run) -> dict[str, torch.Tensor]:
    """Every tensor of a run's training state: weights (and their moving average), BatchNorm
    buffers, Adam's moments and step counts."""
    state = run.load_checkpoint()
    nets = ("generator", "discriminator", "generator_ema")
    tensors = {f"{net}.{k}": v for net in nets for k, v in state.get(net, {}).items()}
    for opt in ("opt_G", "opt_D"):
        for index, moments in state[opt]["state"].items():
            for key, value in moments.items():
                tensors[f"{opt}.{index}.{key}"] = torch.as_tensor(value).cpu()
    assert any(name.endswith(".step") for name in tensors)
    assert any("running_mean" in name for name in tensors) or "cnn" not in str(run.config)
    return tensors


def test_resume_of_a_captured_run_is_bit_exact(tmp_path, small_split, monkeypatch):
    EmulatedGraphs().watch(monkeypatch)
    config = _config(epochs=3)
    whole = trainer.train(config, tmp_path / "whole", split=small_split, progress=False)
    first = trainer.train(_config(epochs=1), tmp_path / "part", split=small_split, progress=False)
    resumed = trainer.resume(first.path, epochs=3, split=small_split, progress=False)
    assert _step_stats(resumed) == _step_stats(whole)


def test_failed_capture_warns_and_goes_on_eagerly(tmp_path, small_split, monkeypatch):
    config = _config()
    eager = trainer.train(config, tmp_path / "eager", split=small_split, progress=False)
    graphs = EmulatedGraphs(fail=True)
    monkeypatch.setattr(training, "_graph_backend", lambda config, device, world=None, **_: graphs)
    with pytest.warns(UserWarning, match="capture of the training step failed.*--cuda-graph off"):
        fallback = trainer.train(config, tmp_path / "fallback", split=small_split, progress=False)
    assert graphs.captures == 1 and graphs.replays == 0 and graphs.eager_calls == 10
    assert _step_stats(fallback) == _step_stats(eager)
    assert not any(r["cuda_graph"] for r in fallback.metrics("epoch"))


class TracingGraphs(EmulatedGraphs):
    """Like CUDA, runs the step's Python once while recording it."""

    capturing = False

    def capture(self, body, like):
        self.captures += 1
        self.capturing = True
        try:
            body()
        finally:
            self.capturing = False
        self.captures -= 1  # counted above
        return super().capture(body, like)


def test_a_failed_capture_names_the_operation_that_broke_it():
    graphs = TracingGraphs()

    def body(inputs):
        if graphs.capturing:
            # A read of a value on the host, which a capture refuses; a meta tensor (no data)
            # refuses it on every machine, so the refusal does not depend on a GPU being there.
            inputs["x"].to("meta").sum().item()
        return inputs["x"].sum().reshape(1)

    step = CapturedStep(body, graphs, warmup=1)
    message = r'failed at test_cuda_graph.py:\d+ \(inputs\["x"\]\.to\("meta"\)\.sum\(\)\.item\(\)\)'
    with pytest.warns(UserWarning, match=message + ".*--cuda-graph off"):
        results = [step(x=torch.full((2,), float(i))).item() for i in range(4)]
    assert results == [0.0, 2.0, 4.0, 6.0] and step.mode == "eager"
    assert graphs.captures == 1 and graphs.replays == 0


def test_static_buffers_keep_their_memory_and_shape():
    seen = []

    def body(inputs):
        seen.append(inputs["x"].data_ptr())
        return inputs["x"].sum().reshape(1)

    step = CapturedStep(body, EmulatedGraphs(), warmup=2)
    results = [step(x=torch.full((4,), float(i))) for i in range(5)]
    # Each call's result is its own input's sum, also for the replays after capture.
    assert [r.item() for r in results] == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert step.mode == "captured" and len(set(seen)) == 1
    # A result is a copy: the next replay does not change it.
    assert results[-2].item() == 12.0
    with pytest.raises(ValueError, match="shape"):
        step(x=torch.zeros(3))
    with pytest.raises(ValueError, match="inputs"):
        step(x=torch.zeros(4), y=torch.zeros(4))
    with pytest.raises(ValueError, match="warm-up"):
        CapturedStep(body, EmulatedGraphs(), warmup=0)


def test_loaded_optimiser_keeps_this_process_adam_mechanics(tmp_path):
    config = _config()
    saved = init_state(config, torch.device("cpu"))
    for optimizer in (saved.opt_G, saved.opt_D):
        for group in optimizer.param_groups:
            group["capturable"] = True  # as a CUDA-graph run on a GPU saves it
    loaded = init_state(config, torch.device("cpu"))
    loaded.load_state_dict(saved.state_dict(config))
    for optimizer in (loaded.opt_G, loaded.opt_D):
        assert all(not g["capturable"] and g["fused"] for g in optimizer.param_groups)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cuda_run(
    tmp_path, split, name, model, cuda_graph, precision="fp32", epochs=2, recipe_flags=None
):
    flags = dict(recipe_flags or {})
    conditioning = flags.pop("conditioning", "none")  # a ModelConfig field, not a TrainConfig's
    config = RunConfig(
        model=ModelConfig(model, conditioning=conditioning),
        train=TrainConfig(
            epochs=epochs,
            device="cuda",
            precision=precision,
            seed=3,
            cuda_graph=cuda_graph,
            **flags,
        ),
    )
    return trainer.train(config, tmp_path / name, split=split, progress=False)


@needs_cuda
@pytest.mark.parametrize(
    "model, precision, recipe_flags",
    [
        ("mlp", "fp32", None),
        ("mlp", "bf16", None),
        ("cnn", "fp32", None),
        ("cnn", "bf16", None),
        *[(model, "fp32", flags) for model, flags in IMPROVED],
        (IMPROVED[1][0], "bf16", IMPROVED[1][1]),
        ("mlp", "fp32", {"conditioning": "acgan"}),  # the asked labels: one more input
        ("cnn", "bf16", {"conditioning": "projection"}),
        ("cnn", "bf16", {"conditioning": "projection", "mode_seeking": 0.1}),
        ("cnn", "bf16", {"ema": 0.9999, "ema_ramp": 3.0}),  # another ramp's weight table
    ],
    ids=[
        "mlp-fp32",
        "mlp-bf16",
        "cnn-fp32",
        "cnn-bf16",
        "mlp-ema-sn",
        "cnn-ema-r1",
        "cnn-ema-r1-bf16",
        "mlp-acgan",
        "cnn-projection-bf16",
        "cnn-projection-mode-seeking-bf16",
        "cnn-ema-ramp-bf16",
    ],
)
def test_real_cuda_graph_matches_eager_on_the_gpu(
    tmp_path, small_split, model, precision, recipe_flags
):
    """After 3 eager warm-up steps and 7 replays, every state tensor (weights, BatchNorm
    buffers, Adam's moments and step counts, the moving average) equals eager training's,
    in fp32 and bf16, for the seed recipe and the improved presets' kinds of step (with lazy
    R1: two graphs). cuDNN runs deterministically here so that a difference is the graph's,
    not atomics'."""
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    runs = {
        name: _cuda_run(
            tmp_path, small_split, name, model, graph, precision, recipe_flags=recipe_flags
        )
        for name, graph in (("eager", False), ("captured", True))
    }
    eager, captured = runs["eager"], runs["captured"]
    # A failed capture would have fallen back to eager steps and said so here. With R1 every
    # 2nd step, each form is captured on its 4th call: from epoch 2 on.
    graphed = [False, True] if recipe_flags and "r1_gamma" in recipe_flags else [True, True]
    assert [r["cuda_graph"] for r in captured.metrics("epoch")] == graphed
    assert [r["cuda_graph"] for r in eager.metrics("epoch")] == [False, False]
    tolerance = 1e-5 if precision == "fp32" else 1e-3
    expected, got = state_tensors(eager), state_tensors(captured)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        atol = 0 if name.endswith((".step", "num_batches_tracked")) else tolerance
        torch.testing.assert_close(
            got[name].float(), tensor.float(), rtol=0, atol=atol, msg=lambda m, n=name: f"{n}: {m}"
        )
    torch.testing.assert_close(
        torch.tensor(_step_stats(captured)), torch.tensor(_step_stats(eager)), rtol=0, atol=1e-3
    )
    # A resumed run builds its graphs afresh, so its epochs warm up as the first ones did.
    resumed = trainer.resume(captured.path, epochs=4, split=small_split, progress=False)
    assert [r["cuda_graph"] for r in resumed.metrics("epoch")] == graphed * 2


@needs_cuda
def test_a_failed_real_capture_leaves_cuda_usable(tmp_path, small_split, monkeypatch):
    step = training.train_step

    def syncing(state, real, z, **plan):
        stats = step(state, real, z, **plan)
        if torch.cuda.is_current_stream_capturing():
            stats.sum().item()  # a host sync: breaks the capture
        return stats

    monkeypatch.setattr(training, "train_step", syncing)
    stream = torch.cuda.current_stream()
    with pytest.warns(UserWarning, match=r"failed at test_cuda_graph.py:\d+ \(stats.sum"):
        broken = _cuda_run(tmp_path, small_split, "broken", "mlp", True)
    assert not any(r["cuda_graph"] for r in broken.metrics("epoch"))
    assert len(broken.metrics("step")) == 10  # every step trained, eagerly after the failure
    assert torch.cuda.current_stream() == stream and not torch.cuda.is_current_stream_capturing()
    monkeypatch.undo()
    again = _cuda_run(tmp_path, small_split, "again", "mlp", True)  # a later capture works
    assert all(r["cuda_graph"] for r in again.metrics("epoch"))


@pytest.mark.parametrize(
    "model, conditioning, flags",
    [("mlp", "acgan", {}), ("cnn", "projection", {}), ("mlp", "dual", {"mode_seeking": 1.0})],
    ids=["mlp-acgan", "cnn-projection", "mlp-dual-mode-seeking"],
)
def test_conditional_steps_are_captured_and_train_exactly_like_the_eager_loop(
    tmp_path, small_split, model, conditioning, flags, monkeypatch
):
    # The asked labels are one more static input of the graph; the real labels are gathered
    # inside it from the device-resident label tensor, like the images. With mode seeking the
    # batch's second half is asked for the first half's classes, and its term reads G's
    # latent vectors: both must come from the step's inputs, not from the moment of capture.
    config = _config(model, **flags)
    config = dataclasses.replace(config, model=ModelConfig(model, conditioning=conditioning))
    eager = trainer.train(config, tmp_path / "eager", split=small_split, progress=False)
    graphs = EmulatedGraphs().watch(monkeypatch)
    captured = trainer.train(config, tmp_path / "captured", split=small_split, progress=False)
    assert (graphs.eager_calls, graphs.captures, graphs.replays) == (3, 1, 7)
    assert _step_stats(captured) == _step_stats(eager)
    expected, got = state_tensors(eager), state_tensors(captured)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
