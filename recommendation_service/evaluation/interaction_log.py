"""Reading timestamped interaction logs (CSV/TSV, optionally gzipped) for replay evaluation."""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..data.events import Event
from ..errors import ConfigError


@dataclass(frozen=True)
class LogFormat:
    """Where the columns are. Each column is a header name, or a 0-based position as text.

    Parameters
    ----------
    user_col, item_col, time_col
        Required columns.
    weight_col
        Optional column of positive weights (e.g. quantity); None means weight 1.
    delimiter
        Field separator; None guesses from the file name (``.tsv`` -> tab, else comma).
    has_header
        Whether the first row names the columns.
    """

    user_col: str = "user"
    item_col: str = "item"
    time_col: str = "timestamp"
    weight_col: str | None = None
    delimiter: str | None = None
    has_header: bool = True


def _open_text(path: Path):
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()


def _column_index(spec: str, header: list[str] | None) -> int:
    if spec.isdigit():
        return int(spec)
    if header is None or spec not in header:
        raise ConfigError(f"column {spec!r} not found; header is {header}")
    return header.index(spec)


def read_log(path: Path | str, fmt: LogFormat = LogFormat()) -> tuple[list[Event], int]:
    """Read every interaction, sorted by time (stable, so file order breaks ties).

    Returns
    -------
    (events, skipped)
        The events, and how many rows could not be parsed (missing fields, bad time/weight).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    name = path.name.removesuffix(".gz")
    delimiter = fmt.delimiter or ("\t" if name.endswith(".tsv") else ",")
    events: list[Event] = []
    skipped = 0
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None) if fmt.has_header else None
        u = _column_index(fmt.user_col, header)
        i = _column_index(fmt.item_col, header)
        t = _column_index(fmt.time_col, header)
        w = _column_index(fmt.weight_col, header) if fmt.weight_col else None
        for row in reader:
            try:
                weight = float(row[w]) if w is not None else 1.0
                if not (math.isfinite(weight) and weight > 0) or not row[u] or not row[i]:
                    raise ValueError
                events.append(Event(row[u], row[i], weight, _parse_time(row[t])))
            except (IndexError, ValueError):
                skipped += 1
    events.sort(key=lambda e: e.ts)
    return events, skipped
