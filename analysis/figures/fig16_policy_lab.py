"""Beyond the paper: the toy policy lab (rspo_patch.bandit), RSPO's three claims on exactly solvable policies.

(a) Figure 1 under training: inside the mixture a pi_A + (1 - a) pi_B, ascent on J_1 drives a up (pi_A), ascent on
    J_2 drives a down (towards pi_B); exact gradients solid, sampled registry estimators (pg, rspo_max) dashed.
(b, c, ...) Hitchhiking: J_k over training with the hitchhiking baseline (blues) vs rspo_pass (reds), both unbiased,
    same init and seeds; policy gradient black dashed. One panel per k.
(last) k-matching: J_{k_eval} after training on J_{k_train} (exact ascent), each column scaled by its best value;
    stars mark the best training k of each column (on the diagonal when training k should match evaluation k).
"""

from __future__ import annotations

import numpy as np

from analysis.figures.drawing import figure_legend, panel_grid, placeholder
from analysis.figures.registry import register_figure
from analysis.figures.colors import style_for


def _flip(ax, f1: dict) -> dict:
    ax.set_title("(a) preference flip (Figure 1)")
    for key, ls_label in f1["train"].items():
        k = int(key.split("=")[1])
        color = "#457b9d" if k == 1 else "#e63946"
        ex, sm = ls_label["weight_on_pi_A_exact"], ls_label["weight_on_pi_A_sampled"]
        ax.plot(np.arange(len(ex)), ex, color=color, lw=1.4, label=f"ascent on J_{k} (exact)")
        ax.plot(np.arange(len(sm)), sm, color=color, lw=1.0, ls=(0, (3, 1.5)),
                label=f"J_{k}, sampled '{ls_label['estimator']}'")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("step")
    ax.set_ylabel(r"weight on $\pi_A$")
    ax.legend(loc="center right", fontsize=5.5)
    return {key: {"final_exact": v["weight_on_pi_A_exact"][-1], "final_sampled": v["weight_on_pi_A_sampled"][-1]}
            for key, v in f1["train"].items()}


def _hitch(ax, hh: dict, k: int, letter: str) -> dict:
    res = hh[f"k={k}"]
    ax.set_title(f"({letter}) hitchhiking, k = {k}")
    out = {}
    for est in ("baseline", "rspo_pass"):
        c = res[est]
        y, sd = np.asarray(c["J@k"][str(k)]), np.asarray(c["J@k_sd"][str(k)])
        st = style_for(est, k)
        ax.plot(c["steps"], y, color=st["color"], lw=st["linewidth"], label=st["label"].split(" (")[0])
        ax.fill_between(c["steps"], y - sd, y + sd, color=st["color"], alpha=0.15, lw=0)
        out[est] = float(y[-1])
    pg = hh.get("pg")
    if pg and str(k) in pg["J@k"]:
        st = style_for("pg")
        ax.plot(pg["steps"], pg["J@k"][str(k)], color=st["color"], ls=st["linestyle"], lw=1.1, label=st["label"])
        out["pg"] = float(pg["J@k"][str(k)][-1])
    ax.set_xlabel("step")
    ax.set_ylabel(f"exact Pass@{k}")
    return out


def _kmatch(ax, km: dict, letter: str) -> dict:
    ks = [str(k) for k in km["ks"]]
    m = np.array([[km["exact"][kt][ke] for ke in ks] for kt in ks])  # rows: k_train, cols: k_eval
    rel = m / m.max(axis=0, keepdims=True)
    ax.imshow(rel, cmap="Reds", vmin=rel.min(), vmax=1.0, origin="upper", aspect="auto")
    for i in range(len(ks)):
        for j in range(len(ks)):
            best = m[i, j] == m[:, j].max()
            ax.text(j, i, f"{m[i, j]:.2f}" + ("*" if best else ""), ha="center", va="center", fontsize=6,
                    color="white" if rel[i, j] > 0.97 else "black", weight="bold" if best else "normal")
    ax.set_xticks(range(len(ks)), ks)
    ax.set_yticks(range(len(ks)), ks)
    ax.set_xlabel("evaluation k")
    ax.set_ylabel("training k")
    ax.grid(False)
    diag = km.get("diagonal_best_exact")
    ax.set_title(f"({letter}) k-matching: Max@k_eval" + ("" if diag is None else f"\n(diagonal best: {diag})"))
    return {"exact": km["exact"], "diagonal_best_exact": diag, "diagonal_best_sampled": km.get("diagonal_best_sampled")}


@register_figure("fig16_policy_lab", needs="bandit",
                 caption="Toy policy lab with exact objectives. (a) Training inside the pi_A/pi_B mixture of "
                         "Figure 1: ascent on the risk-neutral J_1 moves the weight to pi_A, ascent on the risk-seeking"
                         " J_2 moves it towards pi_B (exact gradients solid, sampled registry estimators dashed). "
                         "Middle: exact Pass@k during training with the hitchhiking baseline (blues) and RSPO (reds) "
                         "at each k (band: +-1 s.d. over replicates), policy gradient black dashed. Last: Max@k of the "
                         "policy trained for each k (column-scaled; * = best training k per evaluation k).")
def build(ctx):
    b = ctx.bandit or {}
    hh = b.get("hitchhiking") or {}
    hks = [int(k) for k in hh.get("settings", {}).get("ks", []) if f"k={k}" in hh]
    fig, axes = panel_grid(2 + len(hks), ncols=3, panel_w=2.5, panel_h=2.0)
    values, missing = {}, []
    if b.get("figure1"):
        values["figure1"] = _flip(axes[0], b["figure1"])
    else:
        missing.append("figure1")
        placeholder(axes[0], "no figure1 in the bandit JSON" if b else "no --bandit JSON given")
    for i, k in enumerate(hks):
        values[f"hitchhiking k={k}"] = _hitch(axes[1 + i], hh, k, "bcdefg"[i])
    if not hks:
        missing.append("hitchhiking")
    if b.get("k_matching"):
        values["k_matching"] = _kmatch(axes[-1], b["k_matching"], "bcdefgh"[len(hks)])
    else:
        missing.append("k_matching")
        placeholder(axes[-1], "no k_matching in the bandit JSON" if b else "no --bandit JSON given")
    if hks:
        figure_legend(fig, axes[1:1 + len(hks)], ncol=3)
    if b.get("quick"):
        fig.suptitle("bandit JSON made with --quick (smoke-test settings)", fontsize=6, color="firebrick")
    return fig, {"source": str(ctx.bandit_path), "missing_inputs": missing, "quick": b.get("quick"),
                 "values": values}
