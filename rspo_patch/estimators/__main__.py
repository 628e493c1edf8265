"""The estimator registry from the command line: list the entries, or check one against its declared metadata.

    python -m rspo_patch.estimators list [--plugin FILE]...
    python -m rspo_patch.estimators check NAME [--plugin FILE]... [--hp KEY=VALUE]... [--no-speed] [--n N...] [--k K...]

``check`` prints one line per property (unbiased, finite, scale, speed; rspo_patch.estimators.check says what each
one tests and with which tolerance), then a verdict line. Plugins come from ``--plugin`` (a .py path or a module
name), the installed entry points and RSPO_BENCH_PLUGINS, as in the trainers (rspo_patch.estimators.plugins).

Exit status: 0 when no property FAILs, 1 when one does, 2 for a plugin that cannot be loaded, an unknown estimator
or hyperparameter, or a bad option (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rspo_core.hparams import parse_hp
from rspo_patch.estimators import ESTIMATORS, get_estimator
from rspo_patch.estimators.check import NK, run_checks, unknown_hp
from rspo_patch.estimators.plugins import PluginError, load_plugins


def _flags(spec) -> str:
    """The metadata of ``spec`` as one compact phrase: unbiasedness, constraints on (n, k, rewards), hyperparameters."""
    unb = "unbiased" if spec.unbiased else "unbiased at k=1" if spec.unbiased_at_k1 else "biased"
    cons = [c for c, on in (("0/1 rewards", spec.binary_only), ("k | n", spec.k_divides_n),
                            (f"n >= {spec.min_n}", spec.min_n > 1), ("ignores k", not spec.uses_k),
                            ("n > k", spec.n_minus_k == 1), (f"n - k >= {spec.n_minus_k}", (spec.n_minus_k or 0) > 1),
                            ("k > n allowed", spec.uses_k and spec.n_minus_k is None))
            if on]
    hps = ", ".join(f"{k}={v!r}" for k, v in spec.hyperparameters.items())
    return "; ".join([unb] + cons + ([hps] if hps else []))


def cmd_list(args) -> int:
    """One line per registered estimator: name, metadata, [origin], description."""
    width = max(map(len, ESTIMATORS))
    for name, spec in ESTIMATORS.items():
        print(f"{name:<{width}}  {_flags(spec)}  [{spec.origin}]  {spec.description}")
    return 0


def cmd_check(args) -> int:
    """The spec, one verdict line per property, the overall verdict; 0 / 1 / 2 as in the module docstring."""
    try:
        spec = get_estimator(args.name)
        hp = parse_hp(args.hp, flag="--hp")
    except ValueError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 2
    if unknown_hp(spec, hp):
        print(unknown_hp(spec, hp), file=sys.stderr)
        return 2
    # --n / --k: every pair n in N, k in K with k <= n; one alone: the other ranges over 1..n, n <= 6
    nk = NK if not (args.n or args.k) else [(n, k) for n in (args.n or range(1, 7))
                                            for k in (args.k or range(1, n + 1)) if k <= n]
    print(f"{spec.name} [{spec.origin}]: {_flags(spec)}" + (f"; checked with {hp}" if hp else ""))
    t0 = time.perf_counter()
    verdicts = run_checks(spec, hp, speed=not args.no_speed, nk=sorted(nk))
    for v in verdicts:
        print(v.line(), flush=True)
    failed = [v.prop for v in verdicts if v.status == "FAIL"]
    print(f"verdict: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'} [{time.perf_counter() - t0:.1f} s]")
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rspo_patch.estimators", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    plugin = argparse.ArgumentParser(add_help=False)
    plugin.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="load this plugin first: a .py path or a module name (repeatable)")
    sub.add_parser("list", parents=[plugin], help="print every registered estimator with its metadata")
    chk = sub.add_parser("check", parents=[plugin], help="check one estimator's declared properties")
    chk.add_argument("name", help="registry name of the estimator")
    chk.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                     help="hyperparameter other than its default (repeatable)")
    chk.add_argument("--no-speed", action="store_true", help="skip the timing beside torch.sort")
    chk.add_argument("--n", type=int, nargs="+", metavar="N",
                     help="group sizes of the enumeration instead of its grid (4^n tuples each: n <= 8 is quick)")
    chk.add_argument("--k", type=int, nargs="+", metavar="K", help="values of k of the enumeration instead of its grid")
    args = ap.parse_args(argv)
    try:
        load_plugins(args.plugin)
    except PluginError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 2
    return cmd_list(args) if args.command == "list" else cmd_check(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head and the like: stop quietly (the Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
