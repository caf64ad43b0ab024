"""The export formats, registered in one table: ``giltrace export --format``
offers what is here.  Each exporter writes a trace to a binary file object it
is given and returns how many records it wrote; where the bytes go (a
temporary file renamed when whole) is the CLI's job (giltrace/cli/export.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, Callable, Dict


@dataclass(frozen=True)
class Exporter:
    name: str
    extension: str
    records: str  # what the count means, for the CLI's message
    write: Callable[..., int]  # (trace, out: IO[bytes], **options) -> records written
    help: str


def _chrome(trace: Any, out: IO[bytes], *, clock: str = "monotonic", merge: Any = None) -> int:
    from .chrome import write_chrome, write_merged

    return write_merged(merge, trace, out) if merge is not None else write_chrome(trace, out, clock=clock)


def _csv(trace: Any, out: IO[bytes], **_options: Any) -> int:
    from .csv import write_intervals_csv

    return write_intervals_csv(trace, out)


EXPORTERS: Dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter("chrome", ".json", "trace events", _chrome, "Trace Event JSON for Perfetto / chrome://tracing"),
        Exporter("csv", ".csv", "intervals", _csv, "one row per wait / hold interval"),
    )
}
