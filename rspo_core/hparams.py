"""Estimator hyperparameters given as ``KEY=VALUE`` strings (``--estimator-hp`` / ``--rspo.hp``): one parser for both
trainers, so a value means the same thing in the reference trainer and in OpenRLHF."""

from __future__ import annotations

import re
from collections.abc import Iterable

_INT = re.compile(r"[+-]?\d+")


def parse_value(raw: str) -> bool | int | float:
    """``"true"``/``"false"`` (any case) -> bool; an integer literal -> int; otherwise float. ValueError otherwise."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(raw.strip()):
        return int(raw)
    return float(raw)


def parse_hp(items: Iterable[str] | None, *, flag: str = "--estimator-hp") -> dict[str, bool | int | float]:
    """``["eps=1e-6", "norm_by_std=false"]`` -> ``{"eps": 1e-6, "norm_by_std": False}``.

    ValueError naming ``flag``, the item and what was expected on a malformed item or value.
    """
    out: dict[str, bool | int | float] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = parse_value(raw)
        except ValueError:
            raise ValueError(f"{flag} {key}: value {raw!r} is not a number or true/false") from None
    return out
