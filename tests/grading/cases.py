"""The grading table: (output, gold, fallback, finish_reason, expected, note).

Every expectation was checked against math-verify 0.9.0 through rspo_core.grading; rows marked LENIENT/STRICT pin a
known quirk of math-verify (research/evaluation.md) so a version bump that changes it shows up as a test failure.
"""

B = "\\boxed{{{}}}".format

CASES = [
    # --- integers, negatives, fast path
    (B("42"), "42", None, "stop", True, "integer"),
    (B("41"), "42", None, "stop", False, "wrong integer"),
    (B("-5"), "-5", None, "stop", True, "negative"),
    (B("-5"), "5", None, "stop", False, "sign matters"),
    (B("007"), "7", None, "stop", True, "leading zeros"),
    (B("1000000000000000001"), "1000000000000000000", None, "stop", False, "big integers compared exactly"),
    (B("1,000"), "1000", None, "stop", True, "thousands separator"),
    (B("1{,}000"), "1000", None, "stop", True, "LaTeX thousands separator"),
    # --- decimals
    (B("27"), "27.0", None, "stop", True, "AMC23 golds are floats"),
    (B("0.5"), "\\frac12", None, "stop", True, "decimal vs fraction"),
    (B("1.3"), "1.31", None, "stop", False, "STRICT: no relative tolerance (Minerva)"),
    (B("0.1234567"), "0.1234568", None, "stop", True, "LENIENT: equal after rounding to 6 decimals"),
    (B("3.14"), "\\pi", None, "stop", False, "3.14 is not pi"),
    (B("2\\pi"), "6.283185", None, "stop", True, "symbolic vs 6-decimal numeric"),
    # --- fractions
    (B("\\frac{1}{2}"), "0.5", None, "stop", True, "fraction vs decimal"),
    (B("\\dfrac{3}{4}"), "0.75", None, "stop", True, "dfrac"),
    (B("1/2"), "\\frac{1}{2}", None, "stop", True, "slash fraction"),
    (B("\\frac{2}{4}"), "\\frac{1}{2}", None, "stop", True, "unreduced fraction"),
    (B("\\frac{1}{3}"), "\\frac{1}{2}", None, "stop", False, "wrong fraction"),
    (B("\\sqrt{2}/2"), "\\frac{\\sqrt2}{2}", None, "stop", True, "radicals"),
    # --- percentages
    (B("10\\%"), "10", None, "stop", True, "LENIENT: percent sign ignored against a bare gold"),
    (B("50\\%"), "0.5", None, "stop", True, "LENIENT: 50% also equals 0.5"),
    (B("0.5"), "50\\%", None, "stop", True, "percent gold"),
    # --- units, \text{}, degrees
    (B("6.5\\mathrm{~m}"), "6.5", None, "stop", True, "units in mathrm dropped"),
    (B("5\\text{ cm}"), "5", None, "stop", True, "units in text dropped"),
    (B("90^\\circ"), "90", None, "stop", True, "degree sign dropped"),
    (B("30^{\\circ}"), "\\frac{\\pi}{6}", None, "stop", False, "STRICT: degrees not converted to radians"),
    (B("\\text{(B)}"), "B", None, "stop", True, "multiple choice in text"),
    (B("\\text{(C)}"), "B", None, "stop", False, "wrong choice"),
    # --- equations
    (B("x=3"), "3", None, "stop", True, "LENIENT: assignment vs value"),
    (B("x=4"), "3", None, "stop", False, "wrong assignment"),
    # --- intervals
    (B("(1,2)"), "(1, 2)", None, "stop", True, "open interval"),
    (B("[1,2)"), "[1,2)", None, "stop", True, "half-open interval"),
    (B("(1,2]"), "[1,2)", None, "stop", False, "endpoints matter"),
    (B("x \\in (1,2)"), "(1,2)", None, "stop", True, "membership"),
    (B("(-\\infty, 3]"), "(-\\infty,3]", None, "stop", True, "infinite interval"),
    # --- sets / multiple answers
    (B("3, 5"), "5, 3", None, "stop", True, "unordered answers"),
    (B("\\{1,2\\}"), "\\{2,1\\}", None, "stop", True, "set braces"),
    (B("1 \\text{ and } 2"), "1, 2", None, "stop", True, "answers joined by and"),
    (B("3"), "3, 5", None, "stop", False, "one of two answers"),
    # --- matrices
    (B("\\begin{pmatrix}1\\\\2\\end{pmatrix}"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}", None, "stop", True, "vector"),
    (B("\\begin{pmatrix}1\\\\3\\end{pmatrix}"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}", None, "stop", False,
     "wrong vector"),
    (B("\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}"), "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", None, "stop", True,
     "matrix"),
    # --- scientific notation
    (B("1.5\\times10^4"), "15000", None, "stop", True, "times-ten notation"),
    (B("4.5e-4"), "0.00045", None, "stop", True, "e-notation (rewritten: math-verify reads e as Euler's e)"),
    (B("0.00045"), "4.5e-4", None, "stop", True, "e-notation gold"),
    (B("4.5\\times 10^{-4}"), "4.5e-4", None, "stop", True, "latex vs e-notation gold"),
    (B("4.6e-4"), "4.5e-4", None, "stop", False, "wrong e-notation"),
    # --- expressions, infinity
    (B("\\infty"), "\\infty", None, "stop", True, "infinity"),
    (B("2x+2"), "2(x+1)", None, "stop", True, "expanded expression"),
    # --- extraction
    ("The answer is \\boxed{3}. Actually \\boxed{4}.", "4", None, "stop", True, "last box wins"),
    ("The answer is \\boxed{3}. Actually \\boxed{4}.", "3", None, "stop", False, "earlier box ignored"),
    ("\\fbox{12}", "12", None, "stop", True, "fbox"),
    ("\\boxed 7.", "7", None, "stop", True, "brace-less boxed"),
    ("no box, the answer is 12", "12", None, "stop", False, "no box and no fallback -> no_answer"),
    ("no box, the answer is 12", "12", "last_number", "stop", True, "fallback last_number"),
    ("57", "57", "last_number", "stop", True, "char-level model writes the bare answer"),
    ("so x = -3.", "-3", "last_number", "stop", True, "fallback keeps the sign"),
    ("5-3=2", "2", "last_number", "stop", True, "binary minus is not a sign"),
    ("the total is 1,234 apples", "1234", "last_number", "stop", True, "fallback drops thousands commas"),
    ("about 3/4 of them", "0.75", "last_number", "stop", True, "fallback fraction"),
    # --- truncation
    (B("42"), "42", None, "length", False, "truncated samples are incorrect even when boxed right"),
    ("57", "57", "last_number", "length", False, "truncated with fallback"),
    (B("42"), "42", None, None, True, "finish_reason unknown counts as finished"),
]
