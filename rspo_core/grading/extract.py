"""Answer extraction: the final answer a model output commits to.

``extract_answer(output, fallback)`` = content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (balanced
braces, escaped braces ignored; also the brace-less ``\\boxed 5`` form); without one, the fallback (``last_number``:
last integer, decimal or fraction in the text) or None. Pure functions, linear in the text length.
"""

from __future__ import annotations

import re

FALLBACKS = ("last_number",)

# one pass over the text: \boxed / \fbox commands (eating following spaces), escaped characters, braces
_TOKEN = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*|\\.|[{}]", re.DOTALL)
_BRACELESS = re.compile(r"[^\s$]+")
# last number: optional sign (not a binary minus: no digit/closing bracket before it), thousands separators,
# decimals, a/b fractions; \frac{a}{b} / \dfrac / \tfrac with integer parts
_NUMBER = re.compile(
    r"\\[dt]?frac\{\s*-?\d+\s*\}\{\s*-?\d+\s*\}"
    r"|(?<![\d)\]}.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
)


def check_fallback(fallback: str | None) -> str | None:
    """Normalise a fallback argument: None/"none" -> None, "last_number" kept, anything else ValueError."""
    if fallback is None or fallback == "none":
        return None
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; expected None, 'none' or one of {', '.join(FALLBACKS)}")
    return fallback


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (by start position), or None.

    Braces are matched with a stack in one linear pass (escaped ``\\{``, ``\\}`` are not braces); an unclosed box
    (e.g. a cut-off output) is skipped, so an earlier complete one still counts. ``\\boxed 5`` (no braces) gives "5".
    Nested boxes: the inner one starts later, so ``\\boxed{\\boxed{5}}`` gives "5" (as Hendrycks' last_boxed_only).
    """
    best_start, best = -1, None
    stack: list[int | None] = []  # per open brace: content start if it opens a box, else None
    box_start: int | None = None  # position of a \boxed whose "{" comes next
    box_pos = {}
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and len(tok) > 2 and tok[1] in "bf":
            if text.startswith("{", m.end()):
                box_start = m.start()
            else:
                bm = _BRACELESS.match(text, m.end())
                if bm and m.start() > best_start:
                    best_start, best = m.start(), bm.group().rstrip(".,;:")
            continue
        if tok == "{":
            if box_start is not None:
                stack.append(m.end())
                box_pos[m.end()] = box_start
                box_start = None
            else:
                stack.append(None)
        elif tok == "}":
            if stack:
                s = stack.pop()
                if s is not None and box_pos[s] > best_start:
                    best_start, best = box_pos[s], text[s:m.start()]
        else:
            box_start = None
    return best.strip() if best is not None else None


def last_number(text: str) -> str | None:
    """Last integer / decimal / fraction in the text (thousands commas removed), or None.

    "so x = -3." -> "-3"; "1,234 apples" -> "1234"; "3/4" -> "3/4"; "\\frac{1}{2}" -> "\\frac{1}{2}"; "5-3=2" -> "2".
    """
    last = None
    for last in _NUMBER.finditer(text):
        pass
    if last is None:
        return None
    s = last.group()
    return s if s.startswith("\\") else re.sub(r"\s+", "", s.replace(",", ""))


def extract_answer(output: str, fallback: str | None = None) -> str | None:
    """The final answer of a model output: last ``\\boxed{}``/``\\fbox{}`` content, else the fallback, else None.

    fallback: None (boxed only; the Qwen2.5-Math protocol) or "last_number" (arithmetic sets, SmolLM2, the
    char-level model that writes the bare answer).
    """
    fallback = check_fallback(fallback)
    if not isinstance(output, str):
        raise ValueError(f"output must be a str, got {type(output).__name__}")
    boxed = last_boxed(output)
    if boxed is not None and boxed != "":
        return boxed
    if fallback == "last_number":
        return last_number(output)
    return None
