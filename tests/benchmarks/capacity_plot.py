"""Draws img/capacity.svg from img/capacity.json (written by tests/benchmarks/capacity.py).

    .venv/bin/python -m tests.benchmarks.capacity_plot [--data img/capacity.json]
        [--out img/capacity.svg]

Plain SVG written by hand: four small charts, no plotting library needed.
"""

from __future__ import annotations

import argparse
import json
import math
from html import escape
from pathlib import Path

W, H = 330, 230  # one panel
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 34, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                if lo <= 10.0**e <= hi] or [lo, hi]  # fmt: skip
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-9)))
    while (hi - lo) / step > 6:
        step *= 2
    while (hi - lo) / step < 3:
        step /= 2
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _label(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(x0, y0, title, xlabel, ylabel, series, xlog=False) -> list[str]:
    """SVG elements of one chart: ``series`` is [(name, [(x, y), ...]), ...]."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = 0.0, max(ys) * 1.15

    def px(x):
        if xlog:
            share = math.log10(x / xlo) / math.log10(xhi / xlo)
            return LEFT + share * (W - LEFT - RIGHT)
        return LEFT + (x - xlo) / ((xhi - xlo) or 1) * (W - LEFT - RIGHT)

    def py(y):
        return H - BOTTOM - (y - ylo) / ((yhi - ylo) or 1) * (H - TOP - BOTTOM)

    bottom, mid_x, mid_y = H - BOTTOM, (LEFT + W - RIGHT) / 2, (TOP + H - BOTTOM) / 2
    out = [
        f'<g transform="translate({x0},{y0})">',
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{W - RIGHT}" y2="{bottom}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#444"/>',
        f'<text x="{mid_x}" y="{H - 6}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text transform="translate(13,{mid_y}) rotate(-90)" text-anchor="middle">'
        f"{escape(ylabel)}</text>",
    ]
    # Log axes get their decades too; a linear x (host counts) only the measured points.
    for t in sorted({*(_ticks(xlo, xhi, True) if xlog else ()), *xs}):
        out.append(f'<text x="{px(t):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
                   f'font-size="10">{_label(t)}</text>')  # fmt: skip
    for t in _ticks(ylo, yhi, False):
        out.append(f'<line x1="{LEFT}" y1="{py(t):.1f}" x2="{W - RIGHT}" y2="{py(t):.1f}" '
                   f'stroke="#ddd"/><text x="{LEFT - 4}" y="{py(t) + 3:.1f}" text-anchor="end" '
                   f'font-size="10">{_label(t)}</text>')  # fmt: skip
    for k, (name, pts) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        if len(series) > 1:
            out.append(f'<text x="{LEFT + 8}" y="{TOP + 12 + 14 * k}" fill="{colour}" '
                       f'font-size="11">{escape(name)}</text>')  # fmt: skip
    out.append("</g>")
    return out


def draw(data: dict) -> str:
    mem = [(r["events"], r["bytes_per_event"]) for r in data["memory"]]
    implicit = [(r["events"], r["implicit_s"]) for r in data["refit"]]
    spark = [(r["events"], r["spark_s"]) for r in data["refit"]]
    rps = [(r["items"], r["requests_per_second_per_core"]) for r in data["serving"]]
    p95 = [(r["hosts"], r["p95_ms"]) for r in data["freshness"]]
    p50 = [(r["hosts"], r["p50_ms"]) for r in data["freshness"]]
    body = [
        *panel(0, 0, "Builder memory per window event", "window events", "bytes",
               [("", mem)], xlog=True),
        *panel(W, 0, "Refit time", "window events", "seconds",
               [("implicit (2 cores)", implicit), ("Spark local[2]", spark)], xlog=True),
        *panel(0, H, "Serving throughput, one worker", "catalog items", "requests/s",
               [("", rps)], xlog=True),
        *panel(W, H, "Event visible on every host", "server hosts", "ms",
               [("p95", p95), ("p50", p50)]),
    ]  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{2 * H + 20}" '
            f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" '
            f'fill="white"/>{"".join(body)}<text x="{W}" y="{2 * H + 14}" text-anchor="middle" '
            f'font-size="10" fill="#666">2-core / 24 GB machine, {data.get("measured_on", "")}; '
            f'tests/benchmarks/capacity.py</text></svg>\n')  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("img/capacity.json"))
    parser.add_argument("--out", type=Path, default=Path("img/capacity.svg"))
    args = parser.parse_args()
    args.out.write_text(draw(json.loads(args.data.read_text())), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
