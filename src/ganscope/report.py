"""The lab report, rebuilt and measured: ``ganscope reproduce`` and ``ganscope report``.

``reproduce`` trains the report's MLP and CNN GANs (Adam 2e-4, batch 64, 10 epochs) for each
seed, evaluates them, analyses their latent dimensions, and writes ``report.html`` (one file,
images embedded, opens from disk with no server or network) and ``report.md``. Every step
reuses what an earlier, possibly interrupted, call left: finished runs are kept, unfinished
ones resumed, evaluations and analyses reused when their settings match.

The report is built as a list of blocks (headings, paragraphs, tables, images) rendered twice,
to HTML and to Markdown, so the two never disagree.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import GanscopeError
from .runs import Run, atomic_write_bytes, load_run

MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class Profile:
    """How much work a reproduction does. ``full`` is the report's experiment."""

    name: str
    epochs: int = 10
    #: Train on the first N images only (None: all 60,000).
    limit: int | None = None
    #: Generated images per quality evaluation during training (every epoch).
    eval_samples: int = 2000
    #: Generated images for the final metrics table.
    eval_n: int = 10000
    analysis_n: int = 256
    analysis_dims: str | tuple[int, ...] = "all"
    sefa: int = 10


PROFILES = {
    "full": Profile("full"),
    # Smoke profile: <= 5 minutes on a 2-core CPU. Clearly marked in the report.
    "quick": Profile(
        "quick", epochs=2, limit=6400, eval_samples=1000, eval_n=2000, analysis_n=64, sefa=3
    ),
}


def run_config(
    model: str, seed: int, profile: Profile, device: str, data_dir: str | None
) -> RunConfig:
    return RunConfig(
        data=DataConfig(data_dir=data_dir, limit=profile.limit),
        model=ModelConfig(model),
        train=TrainConfig(
            epochs=profile.epochs,
            seed=seed,
            device=device,
            eval_every=1,
            eval_samples=profile.eval_samples,
        ),
    )


# --------------------------------------------------------------------------------------------
# Reproduce: train, evaluate, analyse (each step reused when already done)
# --------------------------------------------------------------------------------------------


def ensure_trained(path: Path, config: RunConfig, progress: bool) -> Run:
    from .training import resume, train

    if not (path / "config.json").is_file():
        return train(config, path, command=["ganscope", "reproduce"], progress=progress)
    run = load_run(path)
    # Where the data lies, which device trains and how (CUDA graph, checkpoint interval) are
    # not settings of the experiment.
    saved = dataclasses.replace(
        run.config,
        data=dataclasses.replace(run.config.data, data_dir=config.data.data_dir),
        train=dataclasses.replace(
            run.config.train,
            device=config.train.device,
            cuda_graph=config.train.cuda_graph,
            checkpoint_minutes=config.train.checkpoint_minutes,
        ),
    )
    if saved != config:
        raise GanscopeError(
            f"{path} holds a run with other settings than this reproduction; choose another "
            "--out or remove that folder"
        )
    done = run.latest_epoch() if run.has_checkpoint() else 0
    if done < config.train.epochs:
        return resume(
            path, device=config.train.device, command=["ganscope", "reproduce"], progress=progress
        )
    return run


def ensure_evaluated(run: Run, n: int, progress: bool, reference=None) -> dict[str, Any]:
    from .metrics import evaluate_run

    epoch = run.latest_epoch()
    existing = run.path / "evaluation" / f"epoch_{epoch:03d}_seed0_n{n}.json"
    if existing.is_file():
        return json.loads(existing.read_text())
    return evaluate_run(run, n=n, seed=0, progress=progress)


def ensure_analysed(run: Run, profile: Profile, lang: str, progress: bool) -> dict[str, Any]:
    from .analysis import analyze_run

    record_path = run.path / "analysis" / "dims.json"
    epoch = run.latest_epoch()
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if (
            record.get("n") == profile.analysis_n
            and record.get("epoch") == epoch
            and len(record.get("sefa_rows", [])) == profile.sefa
        ):
            return record
    return analyze_run(
        run,
        dims=profile.analysis_dims,
        n=profile.analysis_n,
        seed=0,
        lang=lang,
        sefa=profile.sefa,
        progress=progress,
    )


def reproduce(
    out: str | Path = "reproduce",
    *,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    lang: str = "en",
    profile: Profile = PROFILES["full"],
    data_dir: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Run the lab report's experiment end to end; returns the report's paths."""
    if lang not in ("en", "zh"):
        raise GanscopeError(f"--lang must be en or zh, got {lang!r}")
    if not seeds:
        raise GanscopeError("--seeds needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise GanscopeError(f"--seeds has repeats: {list(seeds)}")
    out = Path(out)
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    started = time.perf_counter()
    runs = []
    for model in MODELS:
        for seed in seeds:
            config = run_config(model, seed, profile, device, data_dir)
            config.validate()
            path = out / "runs" / f"{model}-seed{seed}"
            if progress:
                print(f"[reproduce] {model} GAN, seed {seed}: {path}", flush=True)
            run = ensure_trained(path, config, progress)
            ensure_evaluated(run, profile.eval_n, progress)
            ensure_analysed(run, profile, lang, progress)
            runs.append(run)
    return write_report(
        [run.path for run in runs],
        out,
        lang=lang,
        profile=profile,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# Gathering what the runs hold
# --------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    run: Run
    epochs: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    analysis: dict[str, Any] | None

    @property
    def model(self) -> str:
        return self.run.config.model.name

    @property
    def seed(self) -> int:
        return self.run.config.train.seed

    @property
    def train_seconds(self) -> float:
        return sum(r["seconds"] for r in self.epochs)


def summarise(path: Path, eval_n: int | None, lang: str, progress: bool) -> RunSummary:
    """Read a run folder; evaluate or analyse it first if that was never done."""
    run = load_run(path)
    if not run.has_checkpoint():
        raise GanscopeError(f"run {path} has no checkpoint yet; train it first")
    epoch = run.latest_epoch()
    evaluations = sorted((run.path / "evaluation").glob(f"epoch_{epoch:03d}_seed0_n*.json"))
    if eval_n is not None:
        evaluation = ensure_evaluated(run, eval_n, progress)
    elif evaluations:
        evaluation = json.loads(evaluations[-1].read_text())
    else:
        evaluation = ensure_evaluated(run, 10000, progress)
    analysis_path = run.path / "analysis" / "dims.json"
    if analysis_path.is_file():
        analysis = json.loads(analysis_path.read_text())
    else:
        analysis = ensure_analysed(run, PROFILES["full"], lang, progress)
    return RunSummary(run, run.metrics("epoch"), run.metrics("eval"), evaluation, analysis)


# --------------------------------------------------------------------------------------------
# Observations derived from the numbers
# --------------------------------------------------------------------------------------------

#: For each metric: True when higher is better.
METRICS_TABLE = {
    "fid": False,
    "kid": False,
    "precision": True,
    "recall": True,
    "density": True,
    "coverage": True,
    "classes_covered": True,
    "class_kl_to_real": False,
    "classifier_score": True,
    "memorisation_share": False,
}


def plateau_epoch(epochs: Sequence[dict[str, Any]], tolerance: float = 0.1) -> int | None:
    """First epoch from which both epoch-mean losses stay within ``tolerance`` (relative) of
    their final values; None with fewer than 3 epochs."""
    if len(epochs) < 3:
        return None
    final = {key: epochs[-1][key] for key in ("loss_D", "loss_G")}
    for index, record in enumerate(epochs):
        later = epochs[index:]
        if all(
            abs(r[key] - final[key]) <= tolerance * abs(final[key]) for r in later for key in final
        ):
            return record["epoch"]
    return epochs[-1]["epoch"]


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def metric_table(summaries: Sequence[RunSummary]) -> dict[str, dict[str, tuple]]:
    """model -> metric -> (mean, std or None) over the model's seeds."""
    table: dict[str, dict[str, tuple]] = {}
    for model in dict.fromkeys(s.model for s in summaries):
        group = [s.evaluation for s in summaries if s.model == model and s.evaluation]
        if group:
            table[model] = {
                key: _mean_std([g[key] for g in group])
                for key in METRICS_TABLE
                if all(key in g for g in group)
            }
    return table


def missing_classes(evaluation: dict[str, Any], classes: Sequence[str]) -> list[str]:
    from .metrics import COVERAGE_FRACTION

    histogram = evaluation["class_histogram"]
    total = sum(histogram)
    # The test set is balanced: each class's real share is 1 / number of classes.
    return [
        classes[i]
        for i, count in enumerate(histogram)
        if count / total < COVERAGE_FRACTION / len(histogram)
    ]


# --------------------------------------------------------------------------------------------
# Text in two languages
# --------------------------------------------------------------------------------------------

TEXT = {
    "en": {
        "title": "GANs on Fashion-MNIST: the lab report, reproduced and measured",
        "quick": "Smoke profile (--quick): {epochs} epochs on the first {limit} training "
        "images, {eval_n} samples for the metrics. These numbers are NOT the report's "
        "experiment; run without --quick for that.",
        "setup": "1. Set-up",
        "arch": "2. Architectures",
        "curves": "3. Training curves",
        "curves_text": "Per iteration (light) and epoch means (bold) of the losses of D and G, "
        "D(x) and D(G(z)); the third panel is the sample quality measured after "
        "every epoch (FID in the classifier's feature space, precision, recall).",
        "samples": "4. Random samples",
        "samples_text": "64 images from the latent vectors of seed 0, and the fixed-noise grid "
        "after every epoch as an animation.",
        "latent": "5. Adjusting the latent vector",
        "latent_text": "As in the report: for dimensions 20, 50, 60, 70 and 90, row 1 shifts "
        "the dimension by -{delta:g}, row 2 is unchanged, row 3 shifts it by "
        "+{delta:g}. Under each figure, ganscope's automatic reading ({n} base "
        "vectors, 95% bootstrap intervals).",
        "strongest": "Strongest dimensions found by the analysis",
        "metrics": "6. Metrics",
        "metrics_text": "Against the 10,000 test images, in the feature space of ganscope's "
        "Fashion-MNIST classifier (test accuracy {acc:.2%}). Mean ± standard "
        "deviation over seeds where several were run. Better: ↓ lower, ↑ higher.",
        "observations": "7. Observations",
        "plateau": "{model}: the epoch-mean losses stay within 10% of their final values from "
        "epoch {epoch} on (the report saw this after about 3 epochs).",
        "plateau_none": "{model}: too few epochs to say when the losses flatten.",
        "wins": "{winner} is better on {metric}: {a} vs {b}.",
        "missing": "{model}: classes the generator hardly produces: {classes}.",
        "all_classes": "{model}: all {count} classes are produced.",
        "memorised": "{model}: {share:.1%} of the samples are closer to a training image than "
        "95% of test images are (about {expected:.0%} is expected without copying).",
        "model": "model",
        "seed": "seed",
        "seconds": "training time",
        "setting": "setting",
        "value": "value",
        "parameters": "parameters",
    },
    "zh": {
        "title": "Fashion-MNIST 上的对抗生成网络:实验报告的复现与度量",
        "quick": "快速模式(--quick):在前 {limit} 张训练图像上训练 {epochs} 个 epoch,"
        "用 {eval_n} 个样本计算指标。这些数字不是原报告的实验;去掉 --quick 运行完整实验。",
        "setup": "1. 实验设置",
        "arch": "2. 网络结构",
        "curves": "3. 训练曲线",
        "curves_text": "判别器和生成器的 loss(浅色为每次迭代,粗线为每个 epoch 的均值),"
        "D(x) 与 D(G(z));第三幅图为每个 epoch 后测得的样本质量"
        "(分类器特征空间中的 FID、precision、recall)。",
        "samples": "4. 随机生成一组图片",
        "samples_text": "种子 0 的 64 个随机向量生成的图片,"
        "以及每个 epoch 后固定噪声生成结果的动画。",
        "latent": "5. 调整随机数",
        "latent_text": "与原报告相同:对第 20、50、60、70、90 维,第一行减小 {delta:g},"
        "第二行为原始结果,第三行增加 {delta:g}。图下为 ganscope 的自动解读"
        "({n} 个基向量,95% bootstrap 置信区间)。",
        "strongest": "分析发现的最强维度",
        "metrics": "6. 指标",
        "metrics_text": "与 10,000 张测试图像比较,使用 ganscope 的 Fashion-MNIST 分类器特征空间"
        "(测试准确率 {acc:.2%})。多个种子时给出均值 ± 标准差。↓ 越低越好,↑ 越高越好。",
        "observations": "7. 观察",
        "plateau": "{model}:从第 {epoch} 个 epoch 起,每个 epoch 的平均 loss 与最终值相差不超过 10%"
        "(原报告观察到约 3 个 epoch 之后 loss 基本保持不变)。",
        "plateau_none": "{model}:epoch 太少,无法判断 loss 何时趋于平稳。",
        "wins": "{winner} 在 {metric} 上更好:{a} 对 {b}。",
        "missing": "{model}:生成器几乎不生成的类别:{classes}。",
        "all_classes": "{model}:{count} 个类别都能生成。",
        "memorised": "{model}:{share:.1%} 的样本与某张训练图像的距离比 95% 的测试图像更近"
        "(没有记忆时约为 {expected:.0%})。",
        "model": "模型",
        "seed": "种子",
        "seconds": "训练时间",
        "setting": "设置",
        "value": "值",
        "parameters": "参数量",
    },
}

MODEL_NAMES = {"mlp": "MLP GAN", "cnn": "CNN GAN"}


# --------------------------------------------------------------------------------------------
# Blocks and their two renderings
# --------------------------------------------------------------------------------------------

Block = tuple


def _data_uri(path: Path) -> str:
    kind = {"png": "image/png", "gif": "image/gif"}[path.suffix.lstrip(".").lower()]
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def render_html(blocks: Sequence[Block], title: str) -> str:
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}"
        "figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top}"
        "figcaption{font-size:13px;color:#555;max-width:560px}img{max-width:100%}"
        ".note{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px}"
    )
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body>"
    ]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "note":
            parts.append(f"<p class='note'>{html.escape(block[1])}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block[1])
            parts.append(f"<ul>{items}</ul>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            table_id = f" id='{block[3]}'" if len(block) > 3 else ""
            parts.append(f"<table{table_id}><tr>{head}</tr>{rows}</table>")
        elif kind == "images":
            for path, caption in block[1]:
                parts.append(
                    f"<figure><img src='{_data_uri(path)}' alt='{html.escape(caption)}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        else:
            raise ValueError(f"unknown block {kind!r}")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(blocks: Sequence[Block], base: Path) -> str:
    def rel(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            return str(path.resolve())

    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind in ("p", "note"):
            lines += [("> " if kind == "note" else "") + block[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "pre":
            lines += ["```", block[1], "```", ""]
        elif kind == "table":
            lines.append("| " + " | ".join(str(h) for h in block[1]) + " |")
            lines.append("|" + "---|" * len(block[1]))
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in block[2]]
            lines.append("")
        elif kind == "images":
            lines += [f"![{caption}]({rel(path)})" for path, caption in block[1]] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _format(value: float, std: float | None, key: str) -> str:
    digits = 0 if key == "classes_covered" else 4 if key in ("kid", "memorisation_share") else 3
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def _setup_block(
    summaries: Sequence[RunSummary], t: dict, profile: Profile | None, seconds: float | None
) -> list[Block]:
    first = summaries[0]
    cfg = first.run.config
    device = next((r["device"] for r in reversed(first.epochs) if r.get("device")), "?")
    precisions = sorted(
        {f"{s.model}: {s.epochs[-1].get('precision', 'fp32')}" for s in summaries if s.epochs}
    )
    limit = cfg.data.limit
    rows = [
        ("dataset", f"{cfg.data.dataset} ({limit or 60000:,} training images; 10,000 test images)"),
        (
            "optimiser",
            f"Adam, lr {cfg.train.lr:g}, betas ({cfg.train.beta1:g}, "
            f"{cfg.train.beta2:g}), batch {cfg.train.batch_size}",
        ),
        ("epochs", str(cfg.train.epochs)),
        ("objective", "non-saturating GAN loss, BCE with logits; D step then G step"),
        ("seeds", ", ".join(str(s) for s in sorted({s.seed for s in summaries}))),
        ("device", device),
        ("precision", "; ".join(precisions)),
        (
            "versions",
            f"ganscope {first.run.meta.get('ganscope_version')}, torch "
            f"{first.run.meta.get('torch_version')}, Python {platform.python_version()}",
        ),
    ]
    rows += [
        (
            f"{t['seconds']} {MODEL_NAMES.get(s.model, s.model)} seed {s.seed}",
            f"{s.train_seconds:.0f} s",
        )
        for s in summaries
    ]
    if seconds is not None:
        rows.append(("total wall-clock of this call", f"{seconds:.0f} s"))
    if profile is not None:
        rows.append(("profile", profile.name))
    return [("h", 2, t["setup"]), ("table", (t["setting"], t["value"]), rows, "setup")]


def _architecture_blocks(summaries: Sequence[RunSummary], t: dict) -> list[Block]:
    from .models import build_discriminator, build_generator, count_parameters

    blocks: list[Block] = [("h", 2, t["arch"])]
    for model in dict.fromkeys(s.model for s in summaries):
        generator, discriminator = build_generator(model), build_discriminator(model)
        blocks.append(("h", 3, MODEL_NAMES.get(model, model)))
        blocks.append(
            (
                "pre",
                f"{discriminator}\n{t['parameters']}: "
                f"{count_parameters(discriminator):,}\n\n{generator}\n"
                f"{t['parameters']}: {count_parameters(generator):,}",
            )
        )
    return blocks


def build_blocks(
    summaries: Sequence[RunSummary],
    lang: str,
    profile: Profile | None,
    seconds: float | None,
    out: Path,
) -> list[Block]:
    from .analysis import REPORT_DIMS, describe, summary_markdown
    from .sampling import write_samples

    t = TEXT[lang]
    blocks: list[Block] = [("h", 1, t["title"])]
    if profile is not None and profile.name != "full":
        blocks.append(
            (
                "note",
                t["quick"].format(
                    epochs=profile.epochs, limit=profile.limit, eval_n=profile.eval_n
                ),
            )
        )
    blocks += _setup_block(summaries, t, profile, seconds)
    blocks += _architecture_blocks(summaries, t)

    blocks += [("h", 2, t["curves"]), ("p", t["curves_text"])]
    blocks.append(
        (
            "images",
            [
                (
                    s.run.path / "figures" / "losses.png",
                    f"{MODEL_NAMES.get(s.model, s.model)}, seed {s.seed}",
                )
                for s in summaries
            ],
        )
    )

    blocks += [("h", 2, t["samples"]), ("p", t["samples_text"])]
    grids = []
    for s in summaries:
        grid = write_samples(s.run, n=64, seed=0)[0]
        grids.append((grid, f"{MODEL_NAMES.get(s.model, s.model)}, seed {s.seed}"))
    blocks.append(("images", grids))
    blocks.append(
        (
            "images",
            [
                (
                    s.run.path / "figures" / "progress.gif",
                    f"{MODEL_NAMES.get(s.model, s.model)}: training progress",
                )
                for s in summaries
                if (s.run.path / "figures" / "progress.gif").is_file()
            ],
        )
    )

    blocks.append(("h", 2, t["latent"]))
    for s in summaries:
        if not s.analysis:
            continue
        rows = {r["dim"]: r for r in s.analysis["rows"] if r["dim"] is not None}
        delta = s.analysis["deltas"][0]
        blocks.append(("h", 3, f"{MODEL_NAMES.get(s.model, s.model)}, seed {s.seed}"))
        blocks.append(("p", t["latent_text"].format(delta=delta, n=s.analysis["n"])))
        for dim in REPORT_DIMS:
            figure = s.run.path / "analysis" / "grids" / f"dim_{dim:03d}.png"
            if figure.is_file():
                reading = describe(rows[dim], lang) if dim in rows else ""
                blocks.append(("images", [(figure, reading)]))
        axis_rows = [r for r in s.analysis["rows"] if r["delta"] == delta]
        blocks.append(("h", 4, t["strongest"]))
        ranked = summary_markdown(axis_rows, lang).splitlines()[2:7]
        blocks.append(("ul", [line.split(". ", 1)[1].replace("**", "") for line in ranked]))
        shifts = s.run.path / "analysis" / "class_shifts.png"
        if shifts.is_file():
            blocks.append(("images", [(shifts, t["strongest"])]))

    table = metric_table(summaries)
    accuracy = next(
        (s.evaluation["classifier_test_accuracy"] for s in summaries if s.evaluation), float("nan")
    )
    blocks += [("h", 2, t["metrics"]), ("p", t["metrics_text"].format(acc=accuracy))]
    models = list(table)
    headers = ["metric"] + [MODEL_NAMES.get(m, m) for m in models]
    rows = []
    for key, higher in METRICS_TABLE.items():
        if all(key in table[m] for m in models):
            rows.append(
                [f"{key} {'↑' if higher else '↓'}"] + [_format(*table[m][key], key) for m in models]
            )
    blocks.append(("table", headers, rows, "metrics"))

    blocks += [("h", 2, t["observations"]), ("ul", observations(summaries, table, lang))]
    return blocks


def observations(summaries: Sequence[RunSummary], table: dict, lang: str) -> list[str]:
    """Sentences derived from the numbers: when losses flatten, who wins, missing classes."""
    from .metrics import MEMORISATION_QUANTILE

    t = TEXT[lang]
    lines = []
    for s in summaries:
        name = f"{MODEL_NAMES.get(s.model, s.model)} (seed {s.seed})"
        epoch = plateau_epoch(s.epochs)
        lines.append(
            t["plateau"].format(model=name, epoch=epoch)
            if epoch is not None
            else t["plateau_none"].format(model=name)
        )
    if len(table) == 2:
        (a, ta), (b, tb) = table.items()
        for key, higher in METRICS_TABLE.items():
            if key not in ta or key not in tb or ta[key][0] == tb[key][0]:
                continue
            a_wins = (ta[key][0] > tb[key][0]) == higher
            winner, loser = (a, b) if a_wins else (b, a)
            lines.append(
                t["wins"].format(
                    winner=MODEL_NAMES.get(winner, winner),
                    metric=key,
                    a=_format(table[winner][key][0], None, key),
                    b=_format(table[loser][key][0], None, key),
                )
            )
    for s in summaries:
        if not s.evaluation:
            continue
        name = f"{MODEL_NAMES.get(s.model, s.model)} (seed {s.seed})"
        classes = class_names(lang)
        gone = missing_classes(s.evaluation, classes)
        lines.append(
            t["missing"].format(model=name, classes=", ".join(gone))
            if gone
            else t["all_classes"].format(model=name, count=len(classes))
        )
        if "memorisation_share" in s.evaluation:
            lines.append(
                t["memorised"].format(
                    model=name,
                    share=s.evaluation["memorisation_share"],
                    expected=MEMORISATION_QUANTILE,
                )
            )
    return lines


def class_names(lang: str) -> tuple[str, ...]:
    from .analysis import CLASSES_ZH
    from .data import get_dataset

    return CLASSES_ZH if lang == "zh" else get_dataset("fashion-mnist").classes


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    lang: str = "en",
    profile: Profile | None = None,
    seconds: float | None = None,
    eval_n: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``report.html`` and ``report.md`` into ``out`` from existing run folders."""
    if lang not in ("en", "zh"):
        raise GanscopeError(f"--lang must be en or zh, got {lang!r}")
    if not run_dirs:
        raise GanscopeError("give at least one run folder")
    summaries = [
        summarise(
            Path(p), eval_n if eval_n else (profile.eval_n if profile else None), lang, progress
        )
        for p in run_dirs
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(summaries, lang, profile, seconds, out)
    title = TEXT[lang]["title"]
    paths = {
        "html": atomic_write_bytes(out / "report.html", render_html(blocks, title).encode()),
        "md": atomic_write_bytes(out / "report.md", render_markdown(blocks, out).encode()),
    }
    return paths
