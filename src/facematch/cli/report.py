"""``facematch-report``: gather ``metrics.json`` from runs and multiruns into one Markdown table.

The arguments and the printing; the rows (evaluation runs, per-fold training multiruns combined into one row
per configuration) are :mod:`facematch.report.rows`, the table :mod:`facematch.report.table`.

``--json results/NAME.json`` keeps the rows (with the command and the machine they ran on) as the file
docs tables render; ``--docs`` / ``--check`` re-render or check those tables (``facematch/report/docs.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facematch.errors import FacematchError, cli_errors
from facematch.report.docs import REPORT_KIND, markdown_files, rewrite_docs
from facematch.report.provenance import stamp
from facematch.report.rows import collect, load_run
from facematch.report.table import markdown
from facematch.utils.allocator import tune as tune_allocator

@cli_errors
def main(argv: list[str] | None = None) -> None:
    tune_allocator()
    ap = argparse.ArgumentParser(prog="facematch-report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run or multirun directories (searched recursively)")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON (results/NAME.json, what docs tables render)")
    ap.add_argument("--docs", type=Path, nargs="+", metavar="PATH",
                    help="re-render every marked table in these Markdown files / folders from its JSON file")
    ap.add_argument("--check", type=Path, nargs="+", metavar="PATH",
                    help="exit 1 naming every marked table that differs from its rendering and every figure "
                         "neither rendered nor marked quoted")
    ap.add_argument("--republish", type=Path, nargs="+", metavar="FILE",
                    help="rewrite the published figures of these results files from facematch/report/published.yaml "
                         "(for files whose run folders are gone; nothing else in them changes)")
    ap.add_argument("--stamp", type=Path, nargs="+", metavar="FILE",
                    help="add the provenance block (command, commit, machine) to results files written before it "
                         "existed, from what each records and its git history")
    ap.add_argument("--command", dest="stamp_command", help="--stamp: the command, where the file does not record it")
    ap.add_argument("--commit", dest="stamp_commit", help="--stamp: the commit, where the file does not record it")
    ap.add_argument("--machine", dest="stamp_machine", help="--stamp: the machine, where the file does not record it")
    ap.add_argument("--table", help="--republish: the published table of rows that do not name one yet")
    ap.add_argument("--root", type=Path, default=Path("."), help="the folder the markers' JSON paths start from")
    ap.add_argument("--benchmark", action="store_true",
                    help="one row per model, one column per set (facematch.cli.benchmark_table)")
    ap.add_argument("--tar-far", type=float, default=None, help="--benchmark: also TAR at this FAR, e.g. 1e-3")
    args = ap.parse_args(argv)
    if args.republish or args.stamp:
        from facematch.report.files import republish_files, stamp_files

        if args.republish:
            republish_files(args.republish, args.table)
        if args.stamp:
            stamp_files(args.stamp, args.stamp_command, args.stamp_commit, args.stamp_machine)
        return
    if args.docs or args.check:
        docs(args.docs or [], args.check or [], args.root)
        return
    if not args.runs:
        ap.error("name run directories, or --docs / --check PATH")
    if args.benchmark:
        from facematch.cli.benchmark_table import write_benchmark

        command = "facematch-report " + " ".join(sys.argv[1:] if argv is None else argv)
        return write_benchmark(args.runs, load_run, args.tar_far, args.out, args.json, stamp(command))
    rows = [row.as_dict() for row in collect(args.runs)]
    if not rows:
        raise FacematchError(f"no metrics.json with a .hydra/config.yaml under {', '.join(map(str, args.runs))}")
    table = markdown(rows)
    print(table)
    from facematch.utils.io import atomic_write_text

    if args.out:
        atomic_write_text(args.out, table + "\n")
    if args.json:
        command = "facematch-report " + " ".join(sys.argv[1:] if argv is None else argv)
        doc = {"kind": REPORT_KIND, "command": command, "runs": [str(r) for r in args.runs], "rows": rows,
               "provenance": stamp(command)}
        atomic_write_text(args.json, json.dumps(doc, indent=2, default=float) + "\n")


def docs(rewrite_paths: list[Path], check_paths: list[Path], root: Path) -> None:
    """``--docs``: rewrite the marked tables and values; ``--check``: list those that differ, and every figure
    that is neither rendered from a traceable results file nor marked quoted (facematch.report.trace), and
    exit 1."""
    from facematch.report.trace import check_docs

    for md in rewrite_docs(markdown_files(rewrite_paths), root):
        print(f"rewrote {md}")
    differ = check_docs(markdown_files(check_paths), root)
    if differ:
        print("\n".join(differ))
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
