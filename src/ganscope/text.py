"""Everything a person reads, in both languages: the report's text, the latent analysis's
sentences and summaries. Class names and model display names are the registries' own
(``DatasetSpec.class_names``, ``models.display_name``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .data import get_dataset
from .options import check_lang
from .styles import KEEP_SHARE

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
        "metric": "metric",
        "run_caption": "{model}, seed {seed}",
        "progress_caption": "{model}: training progress",
        "setup_dataset": "dataset",
        "setup_dataset_value": "{dataset} ({train:,} training images; 10,000 test images)",
        "setup_optimiser": "optimiser",
        "setup_optimiser_value": "Adam, lr {lr:g}, betas ({beta1:g}, {beta2:g}), batch {batch}",
        "setup_epochs": "epochs",
        "setup_objective": "objective",
        "setup_objective_value": "non-saturating GAN loss, BCE with logits; D step then G step",
        "setup_seeds": "seeds",
        "setup_device": "device",
        "setup_precision": "precision",
        "setup_versions": "versions",
        "setup_total": "total wall-clock of this call",
        "setup_profile": "profile",
        "directions": "Latent directions, strongest first",
        "sefa_title": "SeFa directions (closed-form)",
        "pca_title": "GANSpace directions (PCA of the first layer)",
        "styles_title": "Style dimensions: what z changes once the class is given",
        "styles_none": "No dimension keeps the class: every shift lowers the label agreement "
        "below {keep:.0%} of the unshifted images'.",
        "style_line": "{rank}. **dim {dim}** (±{delta:g}): keeps the class in {keep:.0%} of "
        "the shifted images ({base:.0%} unshifted); moves the features by {rel:.2f} of the "
        "distance between two samples of a class; ink area {ink:+.1%}, width {width:+.1f} px, "
        "brightness {bright:+.3f}",
        "with_preset": "{model}, {preset} preset",
        "conditional_name": ", conditional ({method})",
        "imported_name": "your GAN ({file})",
        "imported_arch": "Imported with ganscope import; ganscope does not know its layers:",
        "conditional": "9. Asking for a garment: conditional beside unconditional",
        "conditional_text": "The same networks told the class (ganscope train --conditional: "
        "G gets the one-hot label joined to z; D is told it by input concatenation, a "
        "projection, an auxiliary classifier, a dual projection, twin auxiliary classifiers or an "
        "auxiliary discriminative classifier). "
        "Samples are class-balanced; label agreement is the share the shipped classifier calls the "
        "asked class, intra-class FID the mean over classes of each class's FID against its "
        "test images, CAS the test accuracy of the classifier's recipe trained on generated "
        "images only (Ravuri & Vinyals 2019).",
        "conditional_heading": "{model}, {preset} preset",
        "conditional_sentence": "{name}: the classifier calls {agree:.1%} of the samples the "
        "asked class (it is right on {real:.1%} of real test images); its weakest class is "
        "{worst} ({worst_agree:.1%}, against {worst_real:.1%} on real images). FID {fid:.2f}, "
        "intra-class FID {intra:.2f}.",
        "conditional_versus": "Unconditional: FID {fid:.2f}; the label costs {ratio:.2f}x the "
        "seconds per epoch.",
        "conditional_cas": "A classifier trained only on its samples is right on {cas:.1%} of "
        "the real test images (trained on the real images: {real:.1%}).",
        "conditional_grids": "The same 8 latent vectors in every grid: one row for the "
        "unconditional generator, one row per class for each conditional one.",
        "classifier_real": "classifier on real images",
        "agreement": "agreement",
        "intra_fid": "intra-class FID",
        "network": "network",
        "setup_recipe": "recipe: {preset} preset",
        "setup_recipe_seed": "the report's (nothing changed)",
        "presets": "8. Training presets side by side",
        "presets_text": "The same networks trained with each preset (docs/presets.md). The "
        "sample grids use the same 64 latent vectors (seed 0); class shares are the "
        "classifier's labels of the evaluation's samples (the test set has 10% of each), "
        "averaged over seeds; the readings are the first seed's runs.",
        "preset_column": "{preset} preset",
        "class": "class",
        "dimension": "dimension",
        "rarest_row": "rarest class's share ↑",
        "seconds_row": "seconds per epoch ↓",
        "compare": "With the {preset} preset the {model}'s FID goes from {fid_a} to {fid_b} "
        "({fid_ratio}), its recall from {recall_a} to {recall_b} ({recall_ratio}) and its "
        "rarest class from {rare_a:.1%} to {rare_b:.1%} of the samples; it is better on "
        "{better} of {total} metrics, and an epoch takes {seconds_ratio} the time "
        "({seconds_a} s to {seconds_b} s).",
        "times": "{ratio:.2f}x",
        "no_ratio": "no ratio: the first is 0",
        "boundaries_title": "Classifier boundaries in z (towards each class)",
        "boundaries_columns": "| class | vectors (positives) | held-out accuracy | balanced | "
        "stability |",
        "boundaries_none": "too few images of it",
        "methods": "Which method moves which garment best",
        "methods_text": "Each method's best direction towards each class, chosen on the "
        "analysis's {n} base vectors and scored on {compare_n} fresh ones (seed {seed}) at "
        "edit length {length:g} in z: flip rate (of the images the classifier does not call "
        "the class, the share it calls it after the edit), the probability the edit hands to "
        "other classes, and the FID drift (edited against unedited images, same n). The "
        "full table with 95% intervals and a sweep of lengths: analysis/methods.md.",
        "methods_columns": (
            "method",
            "classes won",
            "mean flip rate",
            "given to other classes",
            "FID drift",
            "nearest class kept (±0.05)",
        ),  # fmt: skip
        "methods_wins": "{method} wins on flip rate for {k} of {n} classes ({classes}).",
        "methods_keep": "Projecting the nearest class's normal out of the boundary keeps that "
        "class's probability within ±0.05 for {k} of {n} classes; the plain boundary does for "
        "{plain}.",
        "methods_dims": "The best single dimension flips {dims:.0%} of the images on average "
        "against {best:.0%} for {method}.",
        "method_names": {
            "dims": "the best dimension",
            "sefa": "SeFa",
            "pca": "GANSpace",
            "boundary": "the classifier boundary",
            "conditional": "the boundary keeping the nearest class",
        },  # fmt: skip
    },
    "zh": {
        "title": "Fashion-MNIST 上的对抗生成网络:实验报告的复现与度量",
        "boundaries_title": "z 中的分类器边界(朝向各类别)",
        "boundaries_columns": "| 类别 | 向量数(正例) | 留出准确率 | 平衡准确率 | 稳定性 |",
        "boundaries_none": "该类图像太少",
        "methods": "哪种方法最能把图像推向哪种服饰",
        "methods_text": "每种方法朝每个类别的最佳方向:在分析的 {n} 个基向量上选出,在另外 "
        "{compare_n} 个新基向量(种子 {seed})上评分,z 中的编辑长度为 {length:g}。翻转率:编辑前"
        "分类器不认为属于该类的图像中,编辑后被认为属于该类的比例;交给其他类别的概率;FID 漂移"
        "(编辑后相对未编辑图像,样本数相同)。带 95% 区间和多种长度的完整表格见 "
        "analysis/methods.md。",
        "methods_columns": (
            "方法",
            "获胜类别数",
            "平均翻转率",
            "交给其他类别",
            "FID 漂移",
            "保持最近类别(±0.05)",
        ),  # fmt: skip
        "methods_wins": "{method}在 {n} 个类别中的 {k} 个上翻转率最高({classes})。",
        "methods_keep": "从边界法向量中投影掉最近类别的法向量后,{n} 个类别中有 {k} 个的最近类别"
        "概率变化在 ±0.05 以内;普通边界为 {plain} 个。",
        "methods_dims": "最佳单一维度平均翻转 {dims:.0%} 的图像,{method}为 {best:.0%}。",
        "method_names": {
            "dims": "最佳单一维度",
            "sefa": "SeFa",
            "pca": "GANSpace",
            "boundary": "分类器边界",
            "conditional": "保持最近类别的分类器边界",
        },  # fmt: skip
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
        "metric": "指标",
        "run_caption": "{model},种子 {seed}",
        "progress_caption": "{model}:训练过程",
        "setup_dataset": "数据集",
        "setup_dataset_value": "{dataset}({train:,} 张训练图像;10,000 张测试图像)",
        "setup_optimiser": "优化器",
        "setup_optimiser_value": "Adam,学习率 {lr:g},betas ({beta1:g}, {beta2:g}),批大小 {batch}",
        "setup_epochs": "epoch 数",
        "setup_objective": "目标函数",
        "setup_objective_value": "非饱和 GAN loss,带 logits 的 BCE;先更新 D,再更新 G",
        "setup_seeds": "种子",
        "setup_device": "设备",
        "setup_precision": "精度",
        "setup_versions": "版本",
        "setup_total": "本次运行的总时间",
        "setup_profile": "配置",
        "directions": "潜在维度(按强度排序)",
        "sefa_title": "SeFa 方向(闭式分解)",
        "pca_title": "GANSpace 方向(第一层激活的主成分)",
        "styles_title": "风格维度:类别给定后 z 还改变什么",
        "styles_none": "没有维度保持类别:每个平移都使标签一致率低于未平移图像的 {keep:.0%}。",
        "style_line": "{rank}. **维度 {dim}**(±{delta:g}):平移后 {keep:.0%} 的图像保持类别"
        "(未平移 {base:.0%});特征变化为同类两个样本间距离的 {rel:.2f} 倍;墨迹面积 "
        "{ink:+.1%},宽度 {width:+.1f} 像素,亮度 {bright:+.3f}",
        "with_preset": "{model},{preset} 预设",
        "conditional_name": ",条件生成({method})",
        "imported_name": "你的 GAN({file})",
        "imported_arch": "由 ganscope import 导入;ganscope 不知道它的网络层:",
        "conditional": "9. 指定服装类别:条件生成与无条件生成对比",
        "conditional_text": "同样的网络,告知类别(ganscope train --conditional:G 的输入是 z "
        "与独热标签的拼接;D 通过输入拼接、投影、辅助分类器、双重投影、孪生辅助分类器"
        "或辅助判别分类器得知类别)。样本按类别均衡;标签一致率"
        "是随附分类器判为所要求类别的比例,类内 FID 是各类样本与该类测试图像的 FID 的平均,"
        "CAS 是只用生成图像训练的分类器在真实测试集上的准确率(Ravuri & Vinyals 2019)。",
        "conditional_heading": "{model},{preset} 预设",
        "conditional_sentence": "{name}:分类器把 {agree:.1%} 的样本判为所要求的类别(在真实"
        "测试图像上的准确率为 {real:.1%});最弱的类别是 {worst}({worst_agree:.1%},真实图像为 "
        "{worst_real:.1%})。FID {fid:.2f},类内 FID {intra:.2f}。",
        "conditional_versus": "无条件生成:FID {fid:.2f};标签使每轮耗时变为 {ratio:.2f} 倍。",
        "conditional_cas": "只用其样本训练的分类器在真实测试图像上的准确率为 {cas:.1%}(用真实"
        "图像训练:{real:.1%})。",
        "conditional_grids": "每个网格使用相同的 8 个潜在向量:无条件生成器一行,每个条件生成器"
        "每个类别一行。",
        "classifier_real": "分类器在真实图像上",
        "agreement": "一致率",
        "intra_fid": "类内 FID",
        "network": "网络",
        "setup_recipe": "训练方案:{preset} 预设",
        "setup_recipe_seed": "原报告的方案(未改动)",
        "presets": "8. 训练预设对比",
        "presets_text": "同样的网络用不同预设训练(见 docs/presets.md)。样本网格使用相同的 64 个"
        "潜在向量(种子 0);类别占比是分类器对评估样本的判别结果(测试集中每类各占 10%),"
        "在各种子上取平均;维度解读来自第一个种子的运行。",
        "preset_column": "{preset} 预设",
        "class": "类别",
        "dimension": "维度",
        "rarest_row": "最少类别的占比 ↑",
        "seconds_row": "每个 epoch 的秒数 ↓",
        "compare": "使用 {preset} 预设后,{model} 的 FID 从 {fid_a} 变为 {fid_b}({fid_ratio}),"
        "recall 从 {recall_a} 变为 {recall_b}({recall_ratio}),最少类别的占比从 "
        "{rare_a:.1%} 变为 {rare_b:.1%};{total} 项指标中有 {better} 项更好,"
        "每个 epoch 的时间是原来的 {seconds_ratio}({seconds_a} 秒到 {seconds_b} 秒)。",
        "times": "{ratio:.2f} 倍",
        "no_ratio": "无法求比值:原值为 0",
    },
}


#: Effects smaller than these are not mentioned in the sentences.
MIN_GAIN = 0.05
MIN_BRIGHTNESS = 0.02


def _class_name(row: dict[str, Any], side: str, classes: Sequence[str] | None) -> str:
    index = row[f"{side}_class_index"]
    return classes[index] if classes and index < len(classes) else row[f"{side}_class"]


def describe(row: dict[str, Any], lang: str = "en", classes: Sequence[str] | None = None) -> str:
    """One sentence per analysis row in the report's manner, e.g. "Lowering dimension 20
    drifts towards Trouser (+0.41), raising it towards Sandal (+0.35); images get brighter
    when lowering.". ``classes``: the class names in ``lang`` (default: Fashion-MNIST's)."""
    check_lang(lang)
    if classes is None:
        classes = get_dataset("fashion-mnist").class_names(lang)
    if lang == "en":
        subject = f"dimension {row['dim']}" if row["dim"] is not None else row["direction"]
    else:
        subject = f"第{row['dim']}维" if row["dim"] is not None else row["direction"]
    clear = {
        side: row[f"{side}_reliable"] and row[f"{side}_gain"] >= MIN_GAIN
        for side in ("minus", "plus")
    }
    parts = []
    for side in ("minus", "plus"):
        if not clear[side]:
            continue
        name, gain = _class_name(row, side, classes), row[f"{side}_gain"]
        first = not parts
        if lang == "en":
            verb = "lowering" if side == "minus" else "raising"
            lead = f"{verb} {subject} drifts" if first else f"{verb} it"
            parts.append(f"{lead} towards {name} (+{gain:.2f})")
        else:
            verb = "减小" if side == "minus" else "增加"
            lead = f"{verb}{subject}的数值时" if first else f"{verb}时"
            parts.append(f"{lead}更倾向于生成{name}(+{gain:.2f})")
    if parts:
        sentence = ", ".join(parts) if lang == "en" else ",".join(parts)
    elif lang == "en":
        sentence = (
            f"shifting {subject} by ±{row['delta']:g} has no reliable effect on the "
            f"class (strength {row['strength']:.2f})"
        )
    else:
        sentence = (
            f"将{subject}上下调整{row['delta']:g}对类别没有可靠的影响(强度{row['strength']:.2f})"
        )
    brighter = [
        side
        for side in ("minus", "plus")
        if row[f"{side}_brightness_ci"][0] > 0 and row[f"{side}_brightness"] >= MIN_BRIGHTNESS
    ]
    if brighter:
        when = {"minus": ("lowering", "减小"), "plus": ("raising", "增加")}
        if lang == "en":
            sentence += "; images get brighter when " + " and ".join(when[s][0] for s in brighter)
        else:
            sentence += ";" + "和".join(when[s][1] for s in brighter) + "时图像更亮"
    if lang == "en":
        return sentence[0].upper() + sentence[1:] + "."
    return sentence + "。"


def styles_markdown(rows: Sequence[dict[str, Any]], lang: str = "en", top: int = 10) -> str:
    """A conditional run's style dimensions (``styles.style_dimensions``'s order), one line
    each, with the numbers behind the words."""
    words = TEXT[lang]
    lines = [f"# {words['styles_title']}", ""]
    for rank, row in enumerate(rows[:top], 1):
        lines.append(
            words["style_line"].format(
                rank=rank,
                dim=row["dim"],
                delta=row["delta"],
                keep=row["keep_mean"],
                base=row["keep_base_mean"],
                rel=row["feature_change_relative_mean"],
                ink=row["ink_change_mean"],
                width=row["width_change_mean"],
                bright=row["brightness_change_mean"],
            )  # fmt: skip
        )
    if not rows:
        lines.append(words["styles_none"].format(keep=KEEP_SHARE))
    return "\n".join(lines) + "\n"


def summary_markdown(rows: Sequence[dict[str, Any]], lang: str = "en", title: str = "") -> str:
    """Rows ranked by strength (strongest first), one line and sentence each."""
    ranked = sorted(rows, key=lambda r: r["strength"], reverse=True)
    lines = [f"# {title or TEXT[lang]['directions']}", ""]
    for rank, row in enumerate(ranked, 1):
        low, high = row["strength_ci"]
        strength = (
            f"strength {row['strength']:.2f} [{low:.2f}, {high:.2f}], flips {row['flip_share']:.0%}"
            if lang == "en"
            else f"强度 {row['strength']:.2f} [{low:.2f}, {high:.2f}],类别改变 "
            f"{row['flip_share']:.0%}"
        )
        lines.append(
            f"{rank}. **{row['direction']}** (±{row['delta']:g}; {strength}): {describe(row, lang)}"
        )
    return "\n".join(lines) + "\n"
