"""The ``plot`` and ``summary`` subcommands of ``dqn-sweep``.

The console script owns the top-level parser; it calls `add_plot_parser` and
`add_summary_parser` on its subparsers, then ``args.func(args)`` for the exit code:
0 all good, 2 bad input (a message naming the path, or the option or spec key, on stderr;
nothing written).

Building the parsers imports no numerical library: the handlers import what they use, so that
`dqn-sweep --help`, or `dqn-sweep validate`, does not wait seconds for pandas and matplotlib.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.options import (
    DEFAULT_RESAMPLES,
    FIGURE_FORMATS,
    MAX_RESAMPLES,
    METRICS,
    SUMMARY_FORMATS,
    X_AXES,
)

if TYPE_CHECKING:
    from analysis.normalization import ScoreRange

EXIT_OK = 0
EXIT_BAD_INPUT = 2

SubParsers = argparse._SubParsersAction  # the type `add_subparsers` returns


def _positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _resamples(text: str) -> int:
    """An argparse type for --resamples: 1 to `MAX_RESAMPLES`, so memory stays bounded."""
    value = _positive_int(text)
    if value > MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_RESAMPLES:,} (each resample holds its indices and estimates), got {text}"
        )
    return value


def _score_range(text: str) -> tuple[str, ScoreRange]:
    """An argparse type for --scores ENV=RANDOM:REFERENCE (`parse_scores_option`)."""
    from analysis.normalization import parse_scores_option  # NumPy: only when the option is given

    try:
        return parse_scores_option(text)
    except ValueError as err:  # argparse shows an ArgumentTypeError's message, and exits 2
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options that plot and summary share."""
    parser.add_argument(
        "results", nargs="+", type=Path, metavar="RESULTS", help="results folder(s) to read"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="return that counts as solved (default: the environment's, e.g. 475 for CartPole)",
    )
    parser.add_argument(
        "--resamples",
        type=_resamples,
        default=DEFAULT_RESAMPLES,
        help="bootstrap resamples of seeds (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap generator (default: 0)"
    )
    parser.add_argument(
        "--scores",
        type=_score_range,
        action="append",
        default=[],
        metavar="ENV=RANDOM:REFERENCE",
        help="the returns that normalize ENV's scores to 0 and 1, for the aggregates across "
        "environments (e.g. CartPole-v1=9.4:500); repeat for several environments; wins over "
        "per_env.<env>.scores in a folder's spec.yaml, which wins over the shipped scores",
    )


def add_plot_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``plot``: regenerate every figure from results folders."""
    parser = subparsers.add_parser(
        "plot",
        help="draw learning curves and comparison figures from results folders",
        description="Regenerate every figure from the Parquet files of one or several results "
        "folders; several folders are compared on the same axes.",
    )
    _add_common(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first RESULTS>/plots)"
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="eval",
        help="eval: greedy evaluation returns; episode: training returns (default: eval)",
    )
    parser.add_argument(
        "--x", choices=X_AXES, default="env_step", help="x axis (default: env_step)"
    )
    parser.add_argument(
        "--smooth",
        type=_positive_int,
        default=1,
        metavar="N",
        help="rolling mean over N grid points per seed, before aggregating (default: 1, none)",
    )
    parser.add_argument(
        "--per-seed", action="store_true", help="also draw each seed's curve as a thin line"
    )
    parser.add_argument(
        "--estimator",
        choices=("mean", "iqm"),
        default="mean",
        help="line and band of the learning curves (default: mean)",
    )
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FIGURE_FORMATS,
        default=["png", "svg"],
        dest="formats",
        help="file formats (default: png svg)",
    )
    parser.set_defaults(func=plot_command)
    return parser


def add_summary_parser(
    subparsers: SubParsers[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``summary``: print the per-configuration summary table."""
    parser = subparsers.add_parser(
        "summary",
        help="print final return, AUC and steps to threshold per configuration",
        description="Print one row per configuration: final return (mean and IQM with 95% "
        "bootstrap intervals over seeds), normalised AUC, steps to threshold, timings.",
    )
    _add_common(parser)
    parser.add_argument(
        "--format",
        choices=SUMMARY_FORMATS,
        default="markdown",
        dest="fmt",
        help="output format (default: markdown)",
    )
    parser.set_defaults(func=summary_command)
    return parser


def _bad_input(err: Exception) -> int:
    """Report bad input on stderr and return its exit code."""
    print(f"error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _unwritable(out: Path) -> str | None:
    """Why figures could not be written to the folder `out` (made if missing), or None."""
    if out.exists() and not out.is_dir():
        return f"--out: {out} exists and is not a folder; choose another --out"
    existing = out
    while not existing.exists() and existing != existing.parent:  # what `mkdir -p` would make
        existing = existing.parent
    if not existing.is_dir():
        return f"--out: {existing} is a file, not a folder; choose another --out"
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
        reason = "a read-only file system" if read_only else "no permission"
        return f"{existing}: cannot write there ({reason}); choose another --out"
    return None


def _unused_scores(env_ids: Collection[str], given: Sequence[tuple[str, ScoreRange]]) -> str | None:
    """A note naming the ``--scores`` environments that the results do not hold (a typo, most
    likely: its range would silently go unused), or None."""
    unused = [env for env, _ in given if env not in env_ids]
    if not unused:
        return None
    return (
        f"--scores names {', '.join(unused)}, which these results do not hold (they hold "
        f"{', '.join(env_ids)}); check the spelling"
    )


def plot_command(args: argparse.Namespace) -> int:
    """Handler of ``dqn-sweep plot``: render every figure and list the files written."""
    from analysis.load import ResultsError, load_results  # pandas and matplotlib: see module doc
    from analysis.report import across_envs, render_all, score_ranges_for

    out = args.out if args.out is not None else args.results[0] / "plots"
    try:
        results = load_results(args.results)
        score_ranges_for(results, args.scores)  # a bad spec.yaml or --scores: said before drawing
    except (ResultsError, ValueError) as err:
        return _bad_input(err)
    problem = _unwritable(out)
    if problem is not None:  # said before the figures are drawn, which takes seconds
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        paths = render_all(
            results,
            out,
            formats=args.formats,
            metric=args.metric,
            x=args.x,
            smooth=args.smooth,
            per_seed=args.per_seed,
            threshold=args.threshold,
            estimator=args.estimator,
            n_resamples=args.resamples,
            seed=args.seed,
            score_ranges=dict(args.scores),
        )
    except (ResultsError, ValueError) as err:
        return _bad_input(err)
    except OSError as err:  # the checks above cannot foresee a full disk or a quota
        where = err.filename if err.filename is not None else out
        print(f"error: cannot write {where}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    notes = [results.failure_note(), results.unfinished_note()]
    if args.metric == "episode":
        notes.append(results.no_episode_note())
    across = across_envs(results, dict(args.scores))
    notes += across.notes if across is not None else ()
    notes.append(_unused_scores(results.trials["env_id"].unique().tolist(), args.scores))
    for note in notes:
        if note:
            print(f"note: {note}", file=sys.stderr)
    for path in paths:
        print(f"wrote {path}")
    return EXIT_OK


def summary_command(args: argparse.Namespace) -> int:
    """Handler of ``dqn-sweep summary``: print the summary table to stdout, and with several
    environments the aggregate table across them."""
    import numpy as np

    from analysis.aggregate import aggregate_table, summary_table
    from analysis.load import ResultsError, load_results
    from analysis.report import across_envs, format_summary

    try:
        results = load_results(args.results)
        across = across_envs(results, dict(args.scores))  # first: it checks the score ranges
        table = summary_table(
            results,
            threshold=args.threshold,
            rng=np.random.default_rng(args.seed),
            n_resamples=args.resamples,
        )
    except (ResultsError, ValueError) as err:
        return _bad_input(err)
    aggregate = None
    if across is not None and across.configs:
        aggregate = aggregate_table(
            across, rng=np.random.default_rng(args.seed), n_resamples=args.resamples
        )
    notes = [results.failure_note(), results.unfinished_note()]
    notes += across.notes if across is not None else ()
    notes.append(_unused_scores(results.trials["env_id"].unique().tolist(), args.scores))
    for note in notes:
        if note:
            print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(format_summary(table, args.fmt, aggregate))
    return EXIT_OK
