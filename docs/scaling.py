"""Draw docs/scaling.svg from `qa bench --json` reports: build time and query time against size.

    .venv/bin/python docs/scaling.py REPORT.json [REPORT.json …] [--ef-search 512] [-o docs/scaling.svg]

Each report gives its synthetic corpus (10k, 100k, 1M passages …): build seconds, and the p50 of
FAISS, BM25 and the whole search step, wall clock (the reports of docs/BENCHMARKS.md's quiet table:
on a quiet machine, what a user waits; the search step runs FAISS and BM25 on two threads, so
its CPU time is more than its wall clock). For an HNSW index with an efSearch sweep, the query
figures are the sweep's row at ``--ef-search`` (the default of Settings) when it has one. Plain
SVG, no plotting library; both axes on log scales.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

WIDTH, HEIGHT, PANEL = 760, 270, 380  # the image, and the width of each of its two panels
LEFT, RIGHT, TOP, BOTTOM = 55, 25, 22, 215  # plot area inside a panel
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def points(reports: list[dict], ef_search: int) -> list[dict]:
    """One point per synthetic corpus: passages, build seconds, FAISS / BM25 / search p50 (ms)."""
    rows = []
    for report in reports:
        for corpus in report["corpora"][1:]:
            query = corpus["query"]
            row = {"passages": corpus["passages"], "build": corpus["build_seconds"], "faiss": query["faiss"]["p50_ms"],
                   "bm25": query["bm25"]["p50_ms"], "search": query["search"]["p50_ms"]}
            swept = [r for r in report.get("ef_sweep", []) if r["ef_search"] == ef_search]
            if swept:
                row.update(faiss=swept[0]["faiss_p50_ms"], search=swept[0]["search_p50_ms"])
            rows.append(row)
    return sorted(rows, key=lambda r: r["passages"])


def panel(x0: float, title: str, unit: str, xs: list[float], series: list[tuple[str, list[float]]]) -> list[str]:
    """One log-log panel with a line per series and a legend."""
    values = [v for _, ys in series for v in ys if v > 0]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    xlo, xhi = math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2

    def x(value: float) -> float:
        return x0 + LEFT + (math.log10(value) - xlo) / (xhi - xlo) * (PANEL - LEFT - RIGHT)

    def y(value: float) -> float:
        return BOTTOM - (math.log10(value) - lo) / max(hi - lo, 1) * (BOTTOM - TOP)

    parts = [f'<text x="{x0 + PANEL / 2}" y="14" text-anchor="middle" font-weight="bold">{title}</text>',
             f'<line x1="{x0 + LEFT}" y1="{BOTTOM}" x2="{x0 + PANEL - RIGHT}" y2="{BOTTOM}" stroke="black"/>',
             f'<line x1="{x0 + LEFT}" y1="{TOP}" x2="{x0 + LEFT}" y2="{BOTTOM}" stroke="black"/>',
             f'<text x="{x0 + PANEL / 2}" y="250" text-anchor="middle">passages (log scale)</text>',
             f'<text x="{x0 + 14}" y="{(TOP + BOTTOM) / 2}" transform="rotate(-90 {x0 + 14} {(TOP + BOTTOM) / 2})" text-anchor="middle">{unit}</text>']
    for value in xs:
        parts.append(f'<text x="{x(value):.1f}" y="{BOTTOM + 14}" text-anchor="middle" font-size="10">{value:,}</text>')
    for power in range(lo, hi + 1):
        label = f"{10.0 ** power:g}"
        parts.append(f'<text x="{x0 + LEFT - 4}" y="{y(10.0 ** power) + 3:.1f}" text-anchor="end" font-size="10">{label}</text>')
        parts.append(f'<line x1="{x0 + LEFT}" y1="{y(10.0 ** power):.1f}" x2="{x0 + PANEL - RIGHT}" y2="{y(10.0 ** power):.1f}" stroke="#ddd"/>')
    for number, (name, ys) in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        line = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(xs, ys))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="{colour}"/>' for a, b in zip(xs, ys)]
        parts.append(f'<text x="{x0 + LEFT + 8}" y="{TOP + 12 + 14 * number}" fill="{colour}" font-size="11">{name}</text>')
    return parts


def scaling_svg(rows: list[dict]) -> str:
    xs = [r["passages"] for r in rows]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>']
    parts += panel(0, "Build time", "seconds", xs, [("synthetic build (s)", [r["build"] for r in rows])])
    parts += panel(PANEL, "Query time, p50 (wall clock)", "milliseconds", xs, [
        ("search step: FAISS and BM25 at once, union (ms)", [r["search"] for r in rows]),
        ("FAISS (ms)", [r["faiss"] for r in rows]),
        ("BM25 (ms)", [r["bm25"] for r in rows]),
    ])
    return "".join(parts) + "</svg>\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--ef-search", type=int, default=None, help="the sweep row to plot (default: Settings().hnsw_ef_search)")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("scaling.svg"))
    args = parser.parse_args()
    if args.ef_search is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from qa.config import Settings

        args.ef_search = Settings().hnsw_ef_search
    rows = points([json.loads(path.read_text("utf-8")) for path in args.reports], args.ef_search)
    args.output.write_text(scaling_svg(rows), "utf-8")
    print(f"wrote {args.output}: " + "; ".join(f"{r['passages']:,} passages: build {r['build']} s, search {r['search']} ms" for r in rows))


if __name__ == "__main__":
    main()
