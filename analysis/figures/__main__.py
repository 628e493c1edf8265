"""CLI: python -m analysis.figures --tables DIR --cells results/cells.json --out DIR [--bandit JSON] [--only NAME ...]

Builds every registered figure (or those named by --only) into --out as NAME.pdf, NAME.png and NAME.json. Figures whose
input is not given are skipped with a message (tables figures without --tables and --cells, bandit figures without
--bandit), unless named with --only, which makes a missing input an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from analysis.figures import FIGURES, FigureContext, run_figure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.figures", description="Build the RSPO figures.")
    p.add_argument("--tables", type=Path, default=None, help="folder with passk.csv, maxk.csv, train_curves.csv")
    p.add_argument("--out", type=Path, default=None, help="output folder for NAME.pdf/.png/.json (required to build)")
    p.add_argument("--bandit", type=Path, default=None, help="toy policy lab JSON (python -m rspo_patch.bandit)")
    p.add_argument("--cells", type=Path, default=None,
                   help="the DAG's cell manifest results/cells.json (which cells and benchmarks each family has)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="build only these figures")
    p.add_argument("--ci", default="auto", choices=["auto", "metrics", "seeds"],
                   help="interval of the seed mean: bootstrap from metrics, t across seeds, or auto (the wider)")
    p.add_argument("--list", action="store_true", help="print name, needs and caption of every figure and exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.list:
        for name, spec in FIGURES.items():
            print(f"{name}\t{spec['needs']}\t{spec['caption']}")
        return 0
    if args.out is None:
        p.error("--out is required (unless --list)")
    names = list(FIGURES)
    if args.only:
        unknown = [n for n in args.only if n not in FIGURES]
        if unknown:
            p.error(f"unknown figure(s) {unknown}; expected some of: {', '.join(FIGURES)}")
        names = list(args.only)
    if args.cells is not None and not args.cells.is_file():
        p.error(f"--cells {args.cells} does not exist")
    if args.tables is not None and not args.tables.is_dir():
        p.error(f"--tables {args.tables} is not a directory")
    todo = []
    for name in names:
        needs = FIGURES[name]["needs"]
        flags = {"analytic": [], "tables": ["tables", "cells"], "bandit": ["bandit"]}[needs]
        absent = [f"--{f}" for f in flags if getattr(args, f) is None]
        if absent:
            if args.only:
                p.error(f"figure {name} needs {' and '.join(absent)}")
            logging.info("skipping %s: needs %s", name, " and ".join(absent))
            continue
        todo.append(name)
    ctx = FigureContext(out_dir=args.out, tables_dir=args.tables, bandit_path=args.bandit, cells_path=args.cells,
                        ci=args.ci)
    if todo and args.cells is not None:
        try:
            ctx.manifest  # a bad manifest: one line, before any figure is drawn
        except ValueError as e:
            p.error(str(e))
    for name in tqdm(todo, desc="figures", disable=len(todo) < 2):
        t0 = time.time()
        sidecar = run_figure(name, ctx)
        logging.info("%s done in %.1fs; missing cells: %d", name, time.time() - t0, len(sidecar["missing_cells"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
