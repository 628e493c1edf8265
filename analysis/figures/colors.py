"""The ONE method -> colour/line map used by every figure.

Paper convention (§5.2): policy gradient is a black dashed line; RSPO variants are reds and the hitchhiking
baseline blues, both darker and thicker as the training k grows. Peers get their own hue (also darker with k);
the untrained base model is grey.

Methods no palette knows -- a user's plugin estimator (``challenger``) -- get a hue of PLUGIN_PALETTE (chosen to stay
apart from every hue above) and a marker of PLUGIN_MARKERS, both picked by a SHA-256 of the estimator's name, so they
are the same in every process and run. Hyperparameters are part of a method (``algo~rs_grpo+beta=4.0``,
rspo_core.cells): a method with hyperparameters keeps its estimator's hue and gets a line style and marker of its own
(HP_LINESTYLES, PLUGIN_MARKERS), and its label names them: ``RS-GRPO (beta=4.0)``, ``challenger (beta=4.0, k=4)``.

The figures do not load plugins: they learn the manifest's methods (analysis.manifest.manifest_methods) through
:func:`use_methods`, which FigureContext calls whenever a figure reads the manifest. From the manifest comes a
plugin's ``uses_k`` (the registry knows only the built-ins) and the set of methods one run draws, within which two
plugins never share a hue while the palette has a free one (and no two hyperparameter settings of one estimator share
a style).

    style_for(algo, k) -> {"color": (r, g, b), "linestyle": str, "linewidth": float, "marker": str, "label": str}
    label_for(algo, k) -> str
    uses_k(algo) -> bool
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from matplotlib import colormaps
from matplotlib.colors import to_rgb

from analysis.manifest import registry_uses_k
from rspo_core.cells import split_algo as _split_algo

# algo -> (display name, sequential colormap name or base hex colour). Whether an algo's weights depend on k (its
# line shaded and thickened with k) is the estimator registry's ``uses_k`` (analysis.manifest.registry_uses_k).
# Colormaps give the k-shading for the paper's two main families; hexes are blended towards white for small k.
METHODS: dict[str, tuple[str, str]] = {
    "rspo_pass": ("RSPO", "Reds"),
    "baseline": ("Baseline", "Blues"),
    "rspo_max": ("RSPO-Max", "Reds"),  # RSPO for Max@k: reds, as the paper's Figure 11
    "rspo_max_sorted": ("RSPO-Max (sorted)", "#7209b7"),
    "rspo_pass_plugin": ("RSPO plug-in", "#e76f51"),
    "rspo_max_plugin": ("RSPO-Max plug-in", "#9d4edd"),
    "grpo": ("GRPO", "#2a9d8f"),
    "pkpo_s": ("PKPO s", "#f4a261"),
    "pkpo_sloo": ("PKPO s-loo", "#8c564b"),
    "maxpo": ("MaxPO", "#ff006e"),
    "passk_chen": ("Pass@k training (Chen)", "#6a994e"),
    "grpo_passk": ("GRPO pass@k (Tang)", "#bc6c25"),
    "rs_grpo": ("RS-GRPO", "#bcbd22"),
}
PG_STYLE = {"color": (0.0, 0.0, 0.0), "linestyle": (0, (4, 2)), "linewidth": 1.3, "marker": "", "label":
            "Policy gradient"}
BASE_STYLE = {"color": (0.55, 0.55, 0.55), "linestyle": "-", "linewidth": 1.0, "marker": "o", "label": "Base model"}
# markers keep peers apart in greyscale
_MARKERS = {"grpo": "s", "pkpo_s": "^", "pkpo_sloo": "v", "maxpo": "h", "passk_chen": "D", "grpo_passk": "P",
            "rs_grpo": "X",
            "rspo_max": "", "rspo_max_sorted": "d", "rspo_pass_plugin": "<", "rspo_max_plugin": ">"}
_KMAX_LOG2 = 4  # shading saturates at k = 16

# Hues of methods no palette above knows (plugins). Picked in CIELAB: each at least 20 (CIE76 Delta E) from every
# METHODS colour at every k shade, from black, the base model's grey and white, and at least 24 from each other; no
# red (RSPO's convention). The first PLUGIN_HUES are five distinct hues, the ones a plugin's hash picks from; the
# deeper shades after them are taken only once those five are (use_methods).
PLUGIN_PALETTE = ("#00a651",  # green
                  "#c2188f",  # magenta
                  "#c79a00",  # gold
                  "#00acc1",  # cyan
                  "#3f51b5",  # indigo
                  "#7a3b69",  # plum
                  "#0b6c42",  # dark green
                  "#8a6d00")  # dark ochre
PLUGIN_HUES = 5
PLUGIN_MARKERS = ("*", "p", "8", "H")  # markers no built-in uses (base model: "o")
# a method with hyperparameters: its estimator's hue, one of these line styles (":" marks k schedules)
HP_LINESTYLES = ("-.", (0, (6, 1.5)), (0, (3, 1, 1, 1, 1, 1)))

# the manifest's methods block (use_methods) and what it fixes: plugin estimator -> palette slot, algo -> variant
_RUN: dict = {"methods": {}, "slots": {}, "variants": {}}


def stable_hash(text: str) -> int:
    """A non-negative integer from the SHA-256 of ``text``: the same in every process (unlike the salted hash())."""
    return int.from_bytes(hashlib.sha256(str(text).encode("utf-8")).digest()[:8], "big")


def split_algo(algo: str) -> tuple[str, dict]:
    """(estimator name, hyperparameters) of an algo component (rspo_core.cells.split_algo); a string that is not
    NAME+key=value+... is a name without hyperparameters (a colour map never raises)."""
    try:
        return _split_algo(algo)
    except ValueError:
        return str(algo), {}


def is_known(name: str) -> bool:
    """An estimator name the palette knows (METHODS, policy gradient, the base model)."""
    return name in METHODS or name in ("pg", "base")


def _hp_order(hp: Mapping) -> tuple:
    """Sort key of hyperparameter settings: by name, numbers by value (beta=2 before beta=10), then as written."""
    out = []
    for key in sorted(hp):
        try:
            num = float(hp[key])
            out.append((key, 0, num if num == num else math.inf, str(hp[key])))
        except ValueError:
            out.append((key, 1, 0.0, str(hp[key])))
    return tuple(out)


def _probe(keys, n_rounds: int) -> dict:
    """key -> slot in range(len(PLUGIN_PALETTE) * n_rounds) (colour = slot % len, round = slot // len): keys in
    sorted order, each at the hue its hash prefers or the next free hue, then the next free deeper shade, then the
    next round (another marker); past every slot they repeat."""
    n, hues = len(PLUGIN_PALETTE), PLUGIN_HUES
    taken, out = set(), {}
    for key in sorted(keys):
        start = stable_hash(key) % hues
        colours = [(start + j) % hues for j in range(hues)] + [hues + (start + j) % (n - hues) for j in range(n - hues)]
        order = [r * n + c for r in range(n_rounds) for c in colours]
        slot = next((s for s in order if s not in taken), order[0])
        taken.add(slot)
        out[key] = slot
    return out


def use_methods(methods: Mapping | None) -> None:
    """Tell the colour map the manifest's ``methods`` block (analysis.manifest.manifest_methods; {} or None: none).

    Its ``uses_k`` wins over the registry's for those algos. Its plugin estimators get distinct (colour, marker)
    slots, len(PLUGIN_PALETTE) * len(PLUGIN_MARKERS) of them (_probe): up to PLUGIN_HUES plugins have five different
    hues, up to len(PLUGIN_PALETTE) different colours. The hyperparameter settings of each estimator get variant
    styles 1, 2, ... in the order of their values. Replaces what an earlier call said."""
    methods = {str(a): dict(e) for a, e in (methods or {}).items()}
    plugins = {split_algo(a)[0] for a in methods} - set(METHODS) - {"pg", "base"}
    slots = _probe(plugins, len(PLUGIN_MARKERS))
    by_name: dict = {}
    for algo in methods:
        name, hp = split_algo(algo)
        if hp:
            by_name.setdefault(name, []).append(algo)
    variants = {a: i + 1 for algos in by_name.values()
                for i, a in enumerate(sorted(algos, key=lambda a: (_hp_order(split_algo(a)[1]), a)))}
    _RUN.update(methods=methods, slots=slots, variants=variants)


def uses_k(algo: str) -> bool:
    """Whether a method's weights depend on k: the manifest's ``uses_k`` (use_methods) for its methods, else the
    registry's (analysis.manifest.registry_uses_k; True for a name it lacks). False for the base model."""
    if algo == "base":
        return False
    entry = _RUN["methods"].get(algo)
    if entry is not None and "uses_k" in entry:
        return bool(entry["uses_k"])
    try:
        return registry_uses_k(algo)
    except ValueError:  # not NAME+key=value+...: a name the registry lacks
        return True


def _plugin_slot(name: str) -> int:
    """Palette slot of a plugin estimator: use_methods' slot, else the hue its hash prefers."""
    slot = _RUN["slots"].get(name)
    return slot if slot is not None else stable_hash(name) % PLUGIN_HUES


def _variant(algo: str) -> int:
    """Variant style number (>= 1) of a method with hyperparameters; 0 without."""
    name, hp = split_algo(algo)
    if not hp:
        return 0
    v = _RUN["variants"].get(algo)
    n = len(HP_LINESTYLES) * len(PLUGIN_MARKERS)
    return v if v is not None else 1 + stable_hash("+".join(f"{k}={hp[k]}" for k in sorted(hp))) % n


def k_shade(k: int) -> float:
    """Position in [0, 1] of a training k on the shading scale: 0 at k = 1, 1 at k >= 16 (log2 spaced)."""
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(math.log2(k), _KMAX_LOG2) / _KMAX_LOG2


def k_linewidth(k: int) -> float:
    """Line width growing with k: 0.9 at k = 1 up to 2.3 at k >= 16."""
    return 0.9 + 1.4 * k_shade(k)


def _blend(rgb, t: float):
    """Mix rgb with white: t = 1 gives rgb, t = 0 gives white."""
    return tuple(1.0 - t * (1.0 - c) for c in rgb)


def method_color(algo: str, k: int = 1) -> tuple[float, float, float]:
    """RGB colour of (algo, training k); hyperparameters keep the estimator's colour. Never raises: a name no palette
    knows gets a PLUGIN_PALETTE hue (by its hash, or use_methods' slot), shaded with k where it uses k."""
    name = split_algo(algo)[0]
    if name == "pg":
        return PG_STYLE["color"]
    if name == "base":
        return BASE_STYLE["color"]
    s = k_shade(k)
    if name in METHODS:
        spec = METHODS[name][1]
        if spec in colormaps:
            return tuple(colormaps[spec](0.45 + 0.5 * s)[:3])
        rgb = to_rgb(spec)
        return _blend(rgb, 0.55 + 0.45 * s) if uses_k(algo) else rgb
    rgb = to_rgb(PLUGIN_PALETTE[_plugin_slot(name) % len(PLUGIN_PALETTE)])
    return _blend(rgb, 0.55 + 0.45 * s) if uses_k(algo) else rgb


def _marker(algo: str) -> str:
    name = split_algo(algo)[0]
    v = _variant(algo)
    if is_known(name):
        if not v:
            return _MARKERS.get(name, "")
        return PLUGIN_MARKERS[(v - 1) % len(PLUGIN_MARKERS)]
    slot = _plugin_slot(name)
    base = slot % len(PLUGIN_PALETTE) + slot // len(PLUGIN_PALETTE)  # another marker on each round of colours
    return PLUGIN_MARKERS[(base + v) % len(PLUGIN_MARKERS)]


def label_for(algo: str, k: int | None = None, *, n: int | None = None, model: str | None = None) -> str:
    """Legend text, e.g. 'RSPO (k=4)', 'Policy gradient', 'Base model', 'GRPO', 'RS-GRPO (beta=4.0)',
    'challenger (beta=4.0, k=4)' (a plugin: its registry name)."""
    name, hp = split_algo(algo)
    if name == "pg":
        shown = PG_STYLE["label"]
    elif name == "base":
        shown = BASE_STYLE["label"]
    else:
        shown = METHODS.get(name, (name, None))[0]
    bits = [f"{key}={hp[key]}" for key in sorted(hp)]
    if k is not None and name not in ("pg", "base") and uses_k(algo):
        bits.append(f"k={int(k)}")
    if n is not None:
        bits.append(f"n={int(n)}")
    if model is not None:
        bits.append(model)
    return f"{shown} ({', '.join(bits)})" if bits else shown


def style_for(algo: str, k: int = 1, *, n: int | None = None) -> dict:
    """Matplotlib kwargs for one method line: color, linestyle, linewidth, marker, label."""
    name = split_algo(algo)[0]
    v = _variant(algo)
    if name in ("pg", "base"):
        st = dict(PG_STYLE if name == "pg" else BASE_STYLE)
        if v:
            st.update(linestyle=HP_LINESTYLES[(v - 1) % len(HP_LINESTYLES)], marker=_marker(algo),
                      label=label_for(algo, k, n=n))
        return st
    return {
        "color": method_color(algo, k),
        "linestyle": HP_LINESTYLES[(v - 1) % len(HP_LINESTYLES)] if v else "-",
        "linewidth": k_linewidth(k) if uses_k(algo) else 1.3,
        "marker": _marker(algo),
        "label": label_for(algo, k, n=n),
    }


def n_style(algo: str, k: int, n: int, ns: list[int]) -> dict:
    """style_for(algo, k) darker and thicker as n grows among ``ns`` (the n-scaling figure): RSPO reds, the baseline
    blues, other built-ins greys, a plugin its own hue."""
    st = style_for(algo, k)
    if algo == "base":
        return st
    ns = [m for m in ns if m > 1] or ns
    i = ns.index(n) if n in ns else 0
    t = (i + 1) / max(len(ns), 1)
    name = split_algo(algo)[0]
    if is_known(name):
        cmap = colormaps["Reds" if name.startswith("rspo") else "Blues" if name == "baseline" else "Greys"]
        st["color"] = tuple(cmap(0.35 + 0.6 * t)[:3])
    else:
        st["color"] = _blend(to_rgb(PLUGIN_PALETTE[_plugin_slot(name) % len(PLUGIN_PALETTE)]), 0.35 + 0.65 * t)
    st["linewidth"] = 0.9 + 1.4 * t
    if not _variant(algo):
        st["linestyle"] = "-"
    st["label"] = label_for(algo, k, n=n)
    return st


def sort_key(algo: str, k: int) -> tuple:
    """Legend order: base, pg, RSPO by k, baseline by k, then peers alphabetically, then plugins alphabetically; a
    method's hyperparameter settings follow it in the order of their values."""
    order = {"base": 0, "pg": 1, "rspo_pass": 2, "rspo_max": 3, "baseline": 4}
    name, hp = split_algo(algo)
    return (order.get(name, 10 if is_known(name) else 20), name, _hp_order(hp), int(k))
