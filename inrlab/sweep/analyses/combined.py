"""Combined methods (fidelity issue): architecture × combination of the seeds' methods (CN, IGA,
FreSh …) on held-out pixels — the table no seed paper has."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ...errors import InrlabError  # noqa: E402
from . import ANALYSES, Context, Result  # noqa: E402

METRICS = ("psnr_heldout", "ssim_heldout", "psnr_train")


@ANALYSES.register("combined")
def combined(ctx: Context) -> Result:
    """Per architecture (method labels ``arch+combination``): held-out PSNR / SSIM and training
    PSNR, the mean over the images of each seed, then mean ± std over seeds; ``wins``: on how
    many (image, seed) pairs the combination has the architecture's best held-out PSNR; ``runs``:
    how many finished runs its row averages; FreSh's picks where it chose a value. The winner
    of each architecture is stated in the notes."""
    df = ctx.frame()
    if "method" not in df:
        raise InrlabError("the combined analysis needs a method axis ([[axes.method]] labelled "
                          "ARCH+COMBINATION, e.g. pe+cn)")
    labels = df["method"].astype(str)
    bad = sorted({m for m in labels if "+" not in m.strip("+")})
    if bad:
        raise InrlabError(f"the combined analysis reads method labels as ARCH+COMBINATION (e.g. "
                          f"pe+cn, pe+plain): {', '.join(map(repr, bad))} lack an inner '+'")
    missing = [m for m in METRICS if m not in df]
    if missing:
        raise InrlabError(f"the combined analysis needs {', '.join(missing)} in the runs' metrics: "
                          f"set signal.heldout > 0 and job.callbacks = [\"subset_scores\"]")
    df = df.assign(method=labels).dropna(subset=["psnr_heldout"])
    if df.empty:
        raise InrlabError("the combined analysis found no run with a held-out PSNR: set "
                          "signal.heldout > 0")
    df[["arch", "combination"]] = df["method"].str.split("+", n=1, expand=True)
    if "seed" not in df:
        df["seed"] = 0  # one seed: std columns stay empty
    res = Result()
    fig, axes = plt.subplots(1, df["arch"].nunique(), figsize=(5 * df["arch"].nunique(), 3.5),
                             squeeze=False)
    for ax, (arch, d) in zip(axes[0], df.groupby("arch", sort=False), strict=True):
        combos = list(dict.fromkeys(d["combination"]))
        per_seed = d.groupby(["combination", "seed"], sort=False)[list(METRICS)].mean()
        mean = per_seed.groupby(level=0, sort=False).mean()
        std = per_seed.groupby(level=0, sort=False).std()
        n_seeds = per_seed.groupby(level=0, sort=False).size()
        best = d.loc[d.groupby(["signal", "seed"])["psnr_heldout"].idxmax(), "combination"]
        wins = best.value_counts()
        table = pd.DataFrame({"combination": combos})
        for m in METRICS:
            table[m] = [f"{mean.loc[c, m]:.2f}" + (f" ± {std.loc[c, m]:.2f}"
                                                   if n_seeds[c] > 1 else "")
                        if m.startswith("psnr") else
                        f"{mean.loc[c, m]:.3f}" + (f" ± {std.loc[c, m]:.3f}"
                                                   if n_seeds[c] > 1 else "") for c in combos]
        gain = mean["psnr_heldout"] - mean.loc[combos[0], "psnr_heldout"]
        table[f"Δ held-out vs {combos[0]}"] = [f"{gain[c]:+.2f}" for c in combos]
        table["wins"] = [f"{int(wins.get(c, 0))}/{len(best)}" for c in combos]
        runs = d.groupby("combination", sort=False).size()  # a partial store: rows differ
        table["runs"] = [int(runs[c]) for c in combos]
        if "fresh_pick" in d:
            picks = d.groupby("combination", sort=False)["fresh_pick"].agg(
                lambda s: ", ".join(f"{v:g}×{k}" for v, k in s.dropna().value_counts()
                                    .sort_index().items()))
            table["FreSh picks"] = [picks.get(c, "") for c in combos]
        n_img = d["signal"].nunique()
        res.tables.append((f"{arch}: held-out PSNR dB / SSIM, train PSNR — mean over {n_img} "
                           f"image(s) per seed, ± std over {int(n_seeds.max())} seed(s); "
                           f"first row is the baseline", table))
        top = mean["psnr_heldout"].idxmax()
        res.notes.append(f"{arch}: best held-out PSNR {top} ({mean.loc[top, 'psnr_heldout']:.2f} "
                         f"dB, {gain[top]:+.2f} dB over {combos[0]}), best on "
                         f"{int(wins.get(top, 0))} of {len(best)} (image, seed) pairs.")
        ax.bar(range(len(combos)), [mean.loc[c, "psnr_heldout"] for c in combos],
               yerr=[0 if pd.isna(std.loc[c, "psnr_heldout"]) else std.loc[c, "psnr_heldout"]
                     for c in combos], color=[f"C{i}" for i in range(len(combos))])
        ax.set_xticks(range(len(combos)), combos, rotation=30, ha="right", fontsize=8)
        lo = mean["psnr_heldout"].min()
        ax.set_ylim(lo - 2, mean["psnr_heldout"].max() + 1)
        ax.set_title(arch)
        ax.set_ylabel("held-out PSNR (dB)")
        ax.grid(axis="y", alpha=0.3)
    path = ctx.figure("combined_heldout.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    res.figures.append(path)
    return res
