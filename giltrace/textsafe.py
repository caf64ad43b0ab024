"""Text that came from the traced program, made safe for a terminal.

Thread names, file names, function names and agent messages are the traced
program's bytes: a name holding ``ESC ] 0 ;`` retitles the window, ``ESC [ 2 J``
clears it.  Everything giltrace prints that such a program could have chosen
goes through :func:`printable` first.  Imports nothing (start-up and attach
use it too).
"""

from __future__ import annotations

import re

# C0 controls but tab, DEL, C1 controls, and the Unicode line/paragraph
# separators and bidirectional overrides that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def printable(text: object) -> str:
    """`text` as str with every control character written as an escape (``\\x1b``)."""
    return _UNSAFE.sub(_escape, str(text))


def plot_label(text: object, limit: int = 80) -> str:
    """A name for a figure's axis or legend: printable (a missing glyph is a
    warning on the terminal that echoes the raw character) and at most
    ``limit`` characters (a 64 KB thread name made matplotlib lay out text for
    minutes)."""
    s = printable(text)
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"
