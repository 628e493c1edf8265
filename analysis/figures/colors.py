"""The ONE method -> colour/line map used by every figure.

Paper convention (§5.2): policy gradient is a black dashed line; RSPO variants are reds and the hitchhiking
baseline blues, both darker and thicker as the training k grows. Peers get their own hue (also darker with k);
the untrained base model is grey.

    style_for(algo, k) -> {"color": (r, g, b), "linestyle": str, "linewidth": float, "marker": str, "label": str}
    label_for(algo, k) -> str
"""

from __future__ import annotations

import math

from matplotlib import colormaps
from matplotlib.colors import to_rgb

from analysis.manifest import registry_uses_k

# algo -> (display name, sequential colormap name or base hex colour). Whether an algo's weights depend on k (its
# line shaded and thickened with k) is the estimator registry's ``uses_k`` (analysis.manifest.registry_uses_k).
# Colormaps give the k-shading for the paper's two main families; hexes are blended towards white for small k.
# A registry estimator without an entry here still gets a deterministic tab20 hue (method_color).
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
    """RGB colour of (algo, training k). Unknown algos get a deterministic hue from tab20 (never raises)."""
    if algo == "pg":
        return PG_STYLE["color"]
    if algo == "base":
        return BASE_STYLE["color"]
    s = k_shade(k)
    if algo in METHODS:
        spec = METHODS[algo][1]
        if spec in colormaps:
            return tuple(colormaps[spec](0.45 + 0.5 * s)[:3])
        rgb = to_rgb(spec)
        return _blend(rgb, 0.55 + 0.45 * s) if registry_uses_k(algo) else rgb
    idx = sum(map(ord, algo)) % 20
    return tuple(colormaps["tab20"](idx)[:3])


def label_for(algo: str, k: int | None = None, *, n: int | None = None, model: str | None = None) -> str:
    """Legend text, e.g. 'RSPO (k=4)', 'Policy gradient', 'Base model', 'GRPO'."""
    if algo == "pg":
        name = PG_STYLE["label"]
    elif algo == "base":
        name = BASE_STYLE["label"]
    else:
        name = METHODS.get(algo, (algo, None))[0]
    uses_k = algo not in ("pg", "base") and registry_uses_k(algo)
    bits = []
    if k is not None and uses_k:
        bits.append(f"k={int(k)}")
    if n is not None:
        bits.append(f"n={int(n)}")
    if model is not None:
        bits.append(model)
    return f"{name} ({', '.join(bits)})" if bits else name


def style_for(algo: str, k: int = 1, *, n: int | None = None) -> dict:
    """Matplotlib kwargs for one method line: color, linestyle, linewidth, marker, label."""
    if algo == "pg":
        return dict(PG_STYLE)
    if algo == "base":
        return dict(BASE_STYLE)
    uses_k = registry_uses_k(algo)
    return {
        "color": method_color(algo, k),
        "linestyle": "-",
        "linewidth": k_linewidth(k) if uses_k else 1.3,
        "marker": _MARKERS.get(algo, "o" if algo not in METHODS else ""),
        "label": label_for(algo, k, n=n),
    }


def sort_key(algo: str, k: int) -> tuple:
    """Legend order: base, pg, RSPO by k, baseline by k, then peers alphabetically."""
    order = {"base": 0, "pg": 1, "rspo_pass": 2, "rspo_max": 3, "baseline": 4}
    return (order.get(algo, 10), algo, int(k))
