"""A user's methods (issue 21: plugin estimators, hyperparameters in the algo) in the figures, paired.csv and the
claims table: stable colours and labels, uses_k from the manifest, legends that fit however many methods, the U rows
judged by docs/claims.md's rule against statistics computed here from the table rows, and nothing new without a
manifest ``methods`` block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from analysis.claims import CLAIM_COLUMNS, claims_table
from analysis.figures import colors
from analysis.figures.colors import (HP_LINESTYLES, PLUGIN_HUES, PLUGIN_MARKERS, PLUGIN_PALETTE, METHODS, label_for,
                                     method_color, style_for, use_methods, uses_k)
from analysis.manifest import manifest_for_config, method_entries
from analysis.paired import PAIRED_COLUMNS, PAIRS, paired_table
from analysis.stats import t_interval

REPO = Path(__file__).resolve().parents[2]
T2 = 4.302652729911275  # t_{0.975, 2}
SEEDS = (0, 1, 2)
KS = (1, 2, 4)
PLUGINS = {"challenger": True, "flat": False}  # plugin -> uses_k (what the plugin's registry entry would say)
CONFIG = {
    "families": {
        "chal": {"model": "m", "n": 8, "reward": "pass", "seed": list(SEEDS), "benchmarks": ["b1", "b2"],
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass", "challenger"], "k": [2, 4]},
                          {"algo": "flat"}, {"algo": "rs_grpo", "hp": {"beta": 4.0}}]},
        "nobase": {"model": "m", "n": 8, "reward": "pass", "seed": list(SEEDS), "benchmarks": ["b1"], "base": False,
                   "grid": [{"algo": ["rspo_pass", "challenger"], "k": 2}]},
        "norspo": {"model": "m", "n": 8, "reward": "pass", "seed": list(SEEDS), "benchmarks": ["b1"], "base": False,
                   "grid": [{"algo": ["baseline", "challenger"], "k": 4}]},
        "maxk": {"model": "m", "n": 8, "reward": "max", "seed": list(SEEDS), "benchmarks": ["b1"], "base": False,
                 "grid": [{"algo": ["baseline", "rspo_max", "challenger"], "k": 2}]},
    },
}


@pytest.fixture(autouse=True)
def no_registered_methods():
    """Every test starts and ends with the colour map knowing no manifest methods."""
    use_methods({})
    yield
    use_methods({})


def manifest(config=CONFIG, *, methods=True, plugins=PLUGINS) -> dict:
    """The config's manifest as the workflow writes it with the plugins loaded (their specs stand in here)."""
    from analysis.manifest import registry_uses_k
    from rspo_patch.estimators import ESTIMATORS

    def plugin_uses_k(algo):
        name = algo.split("+")[0]
        return plugins[name] if name in plugins else registry_uses_k(algo)

    m = manifest_for_config(config, uses_k=plugin_uses_k)
    m.pop("methods", None)  # rs_grpo+beta=4.0's entry (a built-in with hyperparameters); the plugins' follow
    if methods:
        specs = {n: SimpleNamespace(origin=f"plugins/{n}.py", uses_k=u, unbiased=False, binary_only=False,
                                    description=n) for n, u in plugins.items()}
        m["methods"] = method_entries([c["algo"] for f in m["families"].values() for c in f["cells"]
                                       if c["algo"] != "base"], {**ESTIMATORS, **specs})
    return m


# ----------------------------------------------------------------------------------------------------------------------
# colours and labels


def test_plugin_styles_are_fixed_by_the_palette_and_the_same_in_every_process():
    # by the name's SHA-256 (not the salted hash()): these follow from PLUGIN_PALETTE's order and never change
    assert colors.stable_hash("challenger") % PLUGIN_HUES == 4 and colors.stable_hash("flat") % PLUGIN_HUES == 0
    assert style_for("challenger", 16)["color"] == pytest.approx(to_rgb("#3f51b5"))  # indigo, unshaded at k 16
    assert style_for("challenger", 16)["marker"] == PLUGIN_MARKERS[4 % len(PLUGIN_MARKERS)]
    code = ("import json; from analysis.figures.colors import style_for, use_methods; "
            "use_methods({'challenger': {'uses_k': True}, 'flat': {'uses_k': False}, 'zeta': {'uses_k': True}}); "
            "print(json.dumps([style_for(a, 4) for a in ('challenger', 'flat', 'zeta', 'rs_grpo+beta=4.0')]))")
    outs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO) + os.pathsep
               + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    got = json.loads(outs[0])
    use_methods({"challenger": {"uses_k": True}, "flat": {"uses_k": False}, "zeta": {"uses_k": True}})
    assert got == json.loads(json.dumps([style_for(a, 4) for a in ("challenger", "flat", "zeta", "rs_grpo+beta=4.0")]))
    assert [g["label"] for g in got] == ["challenger (k=4)", "flat", "zeta (k=4)", "RS-GRPO (beta=4.0)"]


def _lab(rgb):
    """CIELAB (D65) of sRGB colours, shape (..., 3)."""
    rgb = np.asarray(rgb, float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_palette_stays_apart_from_the_built_in_hues_and_within_itself():
    pal = _lab([to_rgb(c) for c in PLUGIN_PALETTE])
    ref = _lab([method_color(a, k) for a in METHODS for k in (1, 2, 4, 8, 16)]
               + [(0, 0, 0), (0.55, 0.55, 0.55), (1, 1, 1)])
    assert np.linalg.norm(pal[:, None] - ref[None], axis=-1).min() >= 20  # CIE76 Delta E
    d = np.linalg.norm(pal[:, None] - pal[None], axis=-1)
    assert d[~np.eye(len(pal), dtype=bool)].min() >= 24
    assert not set(PLUGIN_MARKERS) & ({m for m in colors._MARKERS.values()} | {"o"})


@pytest.mark.parametrize("n_plugins", [2, PLUGIN_HUES, len(PLUGIN_PALETTE), len(PLUGIN_PALETTE) * len(PLUGIN_MARKERS)])
def test_a_runs_plugins_never_share_a_style(n_plugins):
    names = [f"user_est_{i}" for i in range(n_plugins)]
    use_methods({n: {"uses_k": False} for n in names})
    styles = [style_for(n) for n in names]
    hues = {s["color"] for s in styles}
    assert len({(s["color"], s["marker"]) for s in styles}) == n_plugins
    assert len(hues) == min(n_plugins, len(PLUGIN_PALETTE))  # distinct colours while the palette has them ...
    if n_plugins <= PLUGIN_HUES:  # ... and the five distinct hues first
        assert hues <= {to_rgb(c) for c in PLUGIN_PALETTE[:PLUGIN_HUES]}
    assert styles[0]["color"] not in {method_color(a, 1) for a in METHODS}


def test_unregistered_names_spread_over_the_hues():
    from collections import Counter

    counts = Counter(style_for(f"user_{i}", 16)["color"] for i in range(500))  # k 16: the unshaded hue
    hues = [to_rgb(c) for c in PLUGIN_PALETTE[:PLUGIN_HUES]]
    assert len(counts) == PLUGIN_HUES and all(any(np.allclose(c, h) for h in hues) for c in counts)
    assert min(counts.values()) >= 70 and max(counts.values()) <= 130  # ~100 each


def test_uses_k_from_the_manifest_wins():
    assert uses_k("flat") and label_for("flat", 4) == "flat (k=4)"  # the registry does not know it: True
    use_methods(manifest()["methods"])
    assert not uses_k("flat") and uses_k("challenger") and not uses_k("rs_grpo+beta=4.0")
    assert label_for("flat", 4) == "flat" and style_for("flat", 4)["linewidth"] == 1.3
    assert style_for("flat", 2)["color"] == style_for("flat", 16)["color"]  # not shaded by k
    assert style_for("challenger", 2)["color"] != style_for("challenger", 16)["color"]
    assert style_for("challenger", 16)["linewidth"] > style_for("challenger", 2)["linewidth"]
    assert style_for("flat")["color"] != style_for("challenger", 16)["color"]


def test_hyperparameters_keep_the_family_hue_with_their_own_style():
    use_methods({a: {"uses_k": False} for a in ("rs_grpo+beta=10.0", "rs_grpo+beta=2.0", "challenger+tau=0.5")})
    plain, b2, b10 = (style_for(a) for a in ("rs_grpo", "rs_grpo+beta=2.0", "rs_grpo+beta=10.0"))
    assert plain["color"] == b2["color"] == b10["color"] == to_rgb(METHODS["rs_grpo"][1])
    assert b2["label"] == "RS-GRPO (beta=2.0)" and b10["label"] == "RS-GRPO (beta=10.0)"
    assert plain["linestyle"] == "-" and b2["linestyle"] == HP_LINESTYLES[0] and b10["linestyle"] == HP_LINESTYLES[1]
    assert len({(s["linestyle"], s["marker"]) for s in (plain, b2, b10)}) == 3
    assert colors.sort_key("rs_grpo", 1) < colors.sort_key("rs_grpo+beta=2.0", 1) < colors.sort_key(
        "rs_grpo+beta=10.0", 1) < colors.sort_key("challenger", 1)  # by value; plugins after the built-ins
    ch = style_for("challenger+tau=0.5", 4)
    assert ch["label"] == "challenger (tau=0.5)"  # k-free by its manifest entry: the unshaded hue of challenger
    assert ch["color"] == pytest.approx(style_for("challenger", 16)["color"]) and ch["linestyle"] == HP_LINESTYLES[0]
    assert label_for("rspo_pass+beta=1", 4) == "RSPO (beta=1, k=4)"
    assert style_for("rspo_pass+beta=1", 4)["color"] == style_for("rspo_pass", 4)["color"]


# ----------------------------------------------------------------------------------------------------------------------
# figures: a plugin's points, and a legend that fits as methods are added


def _tables(m: dict) -> dict[str, pd.DataFrame]:
    """Pass@k and Max@k rows of every cell of the manifest: a value from (algo, training k, seed, benchmark, k)."""
    rows = []
    cells = {c["cell"]: c for f in m["families"].values() for c in f["cells"]}
    for c in cells.values():
        for bench in ("b1", "b2"):
            for k in KS:
                rows.append({**c, "benchmark": bench, "k": k, "value": value(c["algo"], c["train_k"], c["seed"],
                                                                             bench, k),
                             "ci_low": np.nan, "ci_high": np.nan, "grader_version": "g"})
    df = pd.DataFrame(rows)
    passk = df[df["reward"] == "pass"].assign(metric="pass@k")
    maxk = df.assign(metric="max@k", value=df["value"] * 0.8)  # max@k of every cell (as analysis.metrics scores)
    curves = pd.DataFrame([{**c, "step": s, "entropy": 0.5} for c in cells.values() if c["algo"] != "base"
                           for s in range(3)])
    return {"pass@k": passk.reset_index(drop=True), "max@k": maxk.reset_index(drop=True), "entropy": curves}


def value(algo: str, tk: int, seed: int, bench: str, k: int) -> float:
    e = {0: 0.0, 1: 0.013, 2: -0.021}[seed] * (2 if bench == "b2" else 1)
    base = {1: 0.3, 2: 0.4, 4: 0.5}[k]
    off = {"base": 0.0, "pg": -0.02, "baseline": 0.01 - 0.01 * tk, "rspo_pass": 0.08 + 0.005 * k, "rspo_max": 0.05,
           "challenger": 0.06 + 0.01 * tk + 0.003 * k, "flat": 0.04}.get(algo, 0.01 * (zlib.crc32(algo.encode()) % 7))
    return base + off + (e * (1 + 0.1 * k) if algo in ("challenger", "flat") else 0.0)


def _write_tables(d: Path, t: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    t["pass@k"].to_csv(d / "passk.csv", index=False)
    t["max@k"].to_csv(d / "maxk.csv", index=False)
    t["entropy"].to_csv(d / "train_curves.csv", index=False)
    return d


def _peers_config(n_plugins: int, benches=("b1",)) -> tuple[dict, dict]:
    """(config, plugin -> uses_k): the main family and peers with challenger, flat and n_plugins more plugins."""
    names = [f"user_est_{i:02d}" for i in range(n_plugins)]
    return {"families": {
        "main": {"model": "m", "n": 8, "reward": "pass", "seed": [0, 1], "benchmarks": list(benches),
                 "grid": [{"algo": "pg"}, {"algo": ["baseline", "rspo_pass"], "k": [2, 4]}]},
        "peers": {"model": "m", "n": 8, "reward": "pass", "seed": 0, "benchmarks": list(benches), "base": False,
                  "grid": [{"algo": ["rspo_pass", "pkpo_sloo", "challenger"] + names, "k": [2, 4]},
                           {"algo": "flat"}]}}}, {**PLUGINS, **{n: True for n in names}}


def _fig13(tmp_path, config, plugins):
    from analysis.figures import FIGURES, FigureContext, run_figure
    from analysis.manifest import write_manifest

    m = manifest(config, plugins=plugins)
    tables = _write_tables(tmp_path / "tables", _tables(m))
    cells = write_manifest(m, tmp_path / "cells.json")
    ctx = FigureContext(out_dir=tmp_path / "f", tables_dir=tables, cells_path=cells, png_dpi=40)
    side = run_figure("fig13_peers_matched_k", ctx)
    import matplotlib.pyplot as plt

    from analysis.figures.registry import STYLE_PATH

    with plt.style.context(str(STYLE_PATH)):
        fig, _ = FIGURES["fig13_peers_matched_k"]["function"](ctx)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        leg = fig.legends[0].get_window_extent(r)
        ax = fig.axes[0].get_window_extent(r)
        size = (fig.bbox.width, fig.bbox.height, leg.x0, leg.x1, leg.y1, ax.width, ax.height, ax.y0)
        plt.close(fig)
    return side, size


def test_fig13_draws_plugins_by_the_manifests_uses_k_and_its_legend_fits(tmp_path):
    side, (w, h, lx0, lx1, ly1, aw, ah, ay0) = _fig13(tmp_path / "one", *_peers_config(0))
    pts = side["values"]
    assert {p["k"] for p in pts if p["algo"] == "flat"} == {2, 4}  # k-free (manifest): drawn at every k ...
    assert {p["train_k"] for p in pts if p["algo"] == "flat"} == {1}
    assert all(p["k"] == p["train_k"] for p in pts if p["algo"] == "challenger")  # ... a k-method at its own k
    assert lx0 >= -1 and lx1 <= w + 1 and lx1 - lx0 < aw  # beside the lone panel, narrower than it (issue 21)
    two = ("b1", "b2")
    _, (w, h, lx0, lx1, ly1, aw, ah, ay0) = _fig13(tmp_path / "few", *_peers_config(0, two))
    _, (w2, h2, lx0, lx1, ly1, aw2, ah2, ay0) = _fig13(tmp_path / "many", *_peers_config(22, two))
    assert lx0 >= -1 and lx1 <= w2 + 1 and ly1 <= ay0  # 29 entries below the panels, inside the figure's width
    assert w2 == pytest.approx(w) and h2 > h + 100  # the figure grows for the legend ...
    assert ah2 == pytest.approx(ah, rel=0.05) and aw2 == pytest.approx(aw, rel=0.05)  # ... the panels keep their size


# ----------------------------------------------------------------------------------------------------------------------
# claims and paired.csv


def expected_above(t: pd.DataFrame, fam: dict, better: str, worse: str, *, every_k: bool = False) -> dict:
    """The C1 statistic by hand from the table rows: per seed, over benchmarks and training ks (each of worse's for a
    k-free better), the mean over the common evaluation ks of better - worse, averaged."""
    cells = {c["cell"] for c in fam["cells"]}
    sub = t[t["cell"].isin(cells) & t["benchmark"].isin(fam["benchmarks"])]
    per_seed = {}
    for seed in SEEDS:
        terms = []
        for bench in fam["benchmarks"]:
            s = sub[(sub["seed"] == seed) & (sub["benchmark"] == bench)]
            a = s[s["algo"] == better]
            for tk in sorted(set(s[s["algo"] == worse]["train_k"]) if every_k else set(a["train_k"])):
                av = a if every_k else a[a["train_k"] == tk]
                bv = s[(s["algo"] == worse) & (s["train_k"] == tk)]
                both = sorted(set(av["k"]) & set(bv["k"]))
                if both:
                    terms.append(np.mean([av[av["k"] == k]["value"].iloc[0] - bv[bv["k"] == k]["value"].iloc[0]
                                          for k in both]))
        if terms:
            per_seed[seed] = float(np.mean(terms))
    return per_seed


@pytest.fixture(scope="module")
def judged():
    m = manifest()
    assert set(m["methods"]) == {"challenger", "flat", "rs_grpo+beta=4.0"}
    t = _tables(m)
    return m, t, claims_table(t, m)


@pytest.mark.parametrize("family, method, table, worse, every_k", [
    ("chal", "challenger", "pass@k", "rspo_pass", False), ("chal", "challenger", "pass@k", "baseline", False),
    ("chal", "flat", "pass@k", "rspo_pass", True), ("chal", "flat", "pass@k", "baseline", True),
    ("nobase", "challenger", "pass@k", "rspo_pass", False), ("norspo", "challenger", "pass@k", "baseline", False),
    ("maxk", "challenger", "max@k", "rspo_max", False), ("maxk", "challenger", "max@k", "baseline", False),
])
def test_u_rows_hold_the_c1_statistic_computed_by_hand(judged, family, method, table, worse, every_k):
    m, t, claims = judged
    who = "RSPO" if worse.startswith("rspo") else "the baseline"
    text = f"{method} above {who} at every training k ({method} ignores k)" if every_k else \
        f"{method} above {who} at equal k"
    (row,) = claims[(claims["family"] == family) & (claims["text"] == text)].to_dict("records")
    exp = expected_above(t[table], m["families"][family], method, worse, every_k=every_k)
    assert row["seeds"] == "0;1;2" and row["n_seeds"] == 3
    assert [float(x.split(":")[1]) for x in row["per_seed"].split(";")] == pytest.approx(
        [exp[s] for s in SEEDS], abs=5e-5)
    v = np.array([exp[s] for s in SEEDS])
    half = T2 * v.std(ddof=1) / np.sqrt(3)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((v.mean(), v.mean() - half,
                                                                          v.mean() + half), abs=1e-9)
    want = "reproduced" if v.mean() - half > 0 else "not reproduced" if v.mean() + half < 0 else "inconclusive"
    assert row["verdict"] == want and row["rule"] == "95% t-interval over seeds above 0"
    assert worse in row["statistic"] and ("Max@k" if table == "max@k" else "Pass@k") in row["statistic"]


def test_u_rows_ids_order_and_not_run(judged):
    _, _, claims = judged
    assert list(claims["claim"][:10]) == [f"C{i}" for i in range(1, 11)] and list(claims.columns) == list(CLAIM_COLUMNS)
    u = claims[claims["claim"].str.startswith("U")]
    assert list(u["claim"]) == [f"U{i}" for i in range(1, len(u) + 1)]
    assert list(zip(u["family"], u["text"].str.split().str[0])) == [
        ("chal", "challenger"), ("chal", "challenger"), ("chal", "flat"), ("chal", "flat"),
        ("chal", "rs_grpo+beta=4.0"), ("chal", "rs_grpo+beta=4.0"), ("nobase", "challenger"),
        ("nobase", "challenger"), ("norspo", "challenger"), ("norspo", "challenger"), ("maxk", "challenger"),
        ("maxk", "challenger")]
    by = u.set_index(["family", "text"])
    for fam, text in (("nobase", "challenger above the baseline at equal k"),
                      ("norspo", "challenger above RSPO at equal k")):
        row = by.loc[(fam, text)]
        assert row["verdict"] == "not run" and "lacks the cells" in row["note"] and row["n_seeds"] == 0, (fam, text)
    assert set(u["verdict"]) - {"not run"} <= {"reproduced", "not reproduced", "inconclusive"}


def test_u_rows_without_rows_yet_are_not_run():
    m = manifest()
    t = _tables(m)
    t = {k: v[v["algo"] != "challenger"] if k != "entropy" else v for k, v in t.items()}
    u = claims_table(t, m)
    rows = u[u["text"] == "challenger above RSPO at equal k"].set_index("family")
    assert (rows["verdict"] == "not run").all() and list(rows.index) == ["chal", "nobase", "norspo", "maxk"]
    assert rows.drop("norspo")["note"].str.contains("no rows in the tables yet").all()
    assert "lacks the cells" in rows.loc["norspo", "note"]
    assert u.loc[u["text"] == "flat above RSPO at every training k (flat ignores k)", "verdict"].item() != "not run"


def test_without_a_methods_block_the_claims_and_pairs_are_the_papers_alone(judged):
    from fig_fixtures import CONFIG as DEFAULT_LIKE

    assert "methods" not in manifest_for_config(DEFAULT_LIKE)  # no plugin, no hyperparameters: no block
    m, t, with_methods = judged
    plain = claims_table(t, manifest(methods=False))
    assert list(plain["claim"]) == [f"C{i}" for i in range(1, 11)] and list(plain.columns) == list(CLAIM_COLUMNS)
    pd.testing.assert_frame_equal(plain, with_methods.iloc[:10])  # a user's method leaves C1-C10 as they were
    metrics = pd.concat([t["pass@k"], t["max@k"]], ignore_index=True)
    p0 = paired_table(metrics, manifest(methods=False))
    papers = {(a, b) for a, b, _ in PAIRS}
    assert list(p0.columns) == list(PAIRED_COLUMNS) and set(zip(p0["method_a"], p0["method_b"])) <= papers
    p1 = paired_table(metrics, m)
    old = p1[[(a, b) in papers for a, b in zip(p1["method_a"], p1["method_b"])]].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, p0)


def test_paired_rows_of_a_users_method(judged):
    m, t, _ = judged
    metrics = pd.concat([t["pass@k"], t["max@k"]], ignore_index=True)
    p = paired_table(metrics, m)
    got = p[(p["family"] == "chal") & (p["method_a"] == "challenger") & (p["metric"] == "pass@k")]
    assert set(zip(got["method_b"], got["train_k"])) == {("rspo_pass", 2), ("rspo_pass", 4), ("baseline", 2),
                                                         ("baseline", 4)}
    r = got[(got["method_b"] == "rspo_pass") & (got["train_k"] == 4) & (got["benchmark"] == "b2")
            & (got["k"] == 2)].iloc[0]
    d = [value("challenger", 4, s, "b2", 2) - value("rspo_pass", 4, s, "b2", 2) for s in SEEDS]
    assert [float(x.split(":")[1]) for x in r["diffs"].split(";")] == pytest.approx(d, abs=1e-5)
    assert (r["mean_diff"], r["ci_low"], r["ci_high"]) == pytest.approx(t_interval(d)[:3])
    flat = p[(p["family"] == "chal") & (p["method_a"] == "flat") & (p["metric"] == "pass@k")]
    assert set(zip(flat["method_b"], flat["train_k"])) == {("rspo_pass", 2), ("rspo_pass", 4), ("baseline", 2),
                                                           ("baseline", 4)}  # k-free: at each reference k
    mx = p[(p["family"] == "maxk") & (p["method_a"] == "challenger")]
    assert set(mx["method_b"]) == {"rspo_max", "baseline"}  # the max reward's RSPO
    assert not ((p["family"] == "nobase") & (p["method_b"] == "baseline")).any()
