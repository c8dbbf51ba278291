"""How far a CUDA-graph run's state is from eager training's, next to eager against eager.

    python benchmarks/cuda_graph_diff.py --model cnn --precision bf16 [--data-dir DIR]

The set-up of tests/test_cuda_graph.py's GPU test (320 images, 2 epochs of 5 steps, seed 3,
cuDNN deterministic): two eager runs and one captured run. For every state tensor where any
of them differ it prints the largest difference eager-eager and eager-graph, the share of
elements of eager-graph over the test's tolerance, and the largest change training made to
the tensor (from its initial value), so a difference can be told apart from rounding that
Adam carries on (an update of up to lr per step whatever the gradient's size). Run it with
CUBLAS_WORKSPACE_CONFIG=:4096:8 as well to see whether cuBLAS' per-stream workspaces are
the cause.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from ganscope import trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import load_split
from ganscope.state import init_state


def tensors(run) -> dict[str, torch.Tensor]:
    state = run.load_checkpoint()
    out = {
        f"{n}.{k}": v.float() for n in ("generator", "discriminator") for k, v in state[n].items()
    }
    for opt in ("opt_G", "opt_D"):
        for index, moments in state[opt]["state"].items():
            for key, value in moments.items():
                out[f"{opt}.{index}.{key}"] = torch.as_tensor(value).float().cpu()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--data-dir", default=os.environ.get("GANSCOPE_DATA_DIR"))
    args = parser.parse_args()
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    split = load_split("fashion-mnist", "train", args.data_dir, limit=320, progress=False)

    def config(graph: bool) -> RunConfig:
        train = TrainConfig(
            epochs=2,
            device=args.device,
            precision=args.precision,
            seed=3,
            cuda_graph=graph and args.device != "cpu",
        )
        return RunConfig(model=ModelConfig(args.model), train=train)

    with tempfile.TemporaryDirectory() as folder:
        runs = [
            trainer.train(config(graph), Path(folder) / name, split=split, progress=False)
            for name, graph in (("eager1", False), ("eager2", False), ("graph", True))
        ]
        first, second, graph = (tensors(run) for run in runs)
        captured = [r["cuda_graph"] for r in runs[2].metrics("epoch")]
    initial_state = init_state(config(False), torch.device("cpu"))
    initial = {
        f"{n}.{k}": v.float()
        for n, module in (
            ("generator", initial_state.generator),
            ("discriminator", initial_state.discriminator),
        )
        for k, v in module.state_dict().items()
    }
    print(
        f"{args.model} {args.precision}, CUBLAS_WORKSPACE_CONFIG="
        f"{os.environ.get('CUBLAS_WORKSPACE_CONFIG', '(unset)')}, epochs captured: "
        f"{captured}"
    )
    print(f"{'tensor':40} {'eager-eager':>12} {'eager-graph':>12} {'> tol':>8} {'moved':>10}")
    worst = 0.0
    for name, value in first.items():
        again = (second[name] - value).abs().max().item()
        diff = (graph[name] - value).abs()
        worst = max(worst, diff.max().item())
        if again or diff.max().item():
            over = (diff > args.tolerance).float().mean().item()
            moved = (value - initial[name]).abs().max().item() if name in initial else float("nan")
            print(f"{name:40} {again:12.3g} {diff.max().item():12.3g} {over:8.2%} {moved:10.3g}")
    print(f"largest eager-graph difference: {worst:.3g}")


if __name__ == "__main__":
    main()
