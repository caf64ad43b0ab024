"""A progress bar with an ETA for long grids (tqdm), on stderr.

tqdm estimates the time left from the mean time per finished cell, which
suits a grid whose cells are sized alike.  Without tqdm, or when the stream
is not a terminal (a log file, CI), a plain line per cell with the ETA is
printed instead; nothing at all when disabled.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


class Progress:
    def __init__(self, total: int, enabled: bool = True, stream: Any = None):
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.started = time.monotonic()
        self._bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    unit="cell",
                    file=self.stream,
                    dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}]{postfix}",
                )

    def start_cell(self, label: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label)
        elif self.enabled:
            self.stream.write("[%d/%d%s] %s\n" % (self.done + 1, self.total, self._eta(), label))
            self.stream.flush()

    def _eta(self) -> str:
        if not self.done:
            return ""
        left = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return ", ~%dm%02ds left" % divmod(int(left), 60)

    def finish_cell(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)

    def write(self, message: str) -> None:
        """A message that doesn't break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            self.stream.write(message + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Optional[object]) -> None:
        self.close()
