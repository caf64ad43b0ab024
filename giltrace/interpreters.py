"""The CPython versions giltrace knows: their GIL kind and whether they can be traced.

The one table that setup.py (build the extension or not), the binding (refuse
to trace, and say why), the bench (check each --python, note untraced cells)
and the bench's workload child read.  Adding a Python version is one line
below; a new GIL kind is one entry in ``GIL_KINDS`` plus its C accessor in
csrc/.

Kept cheap and old-fashioned on purpose: it is imported at interpreter
start-up when GILTRACE is set (giltrace/autostart.py, through _binding.py), so
it must stay free of imports; and the workload child loads it by path on
CPython 2.7 (giltrace/bench/workloads/shared.py), so it is Python 2.7 syntax
with type comments.
"""

# How an interpreter hands the GIL from thread to thread.
GIL_KINDS = {
    "old": "2.x semaphore GIL: a lock released and retaken every check interval of ticks",
    "new": "3.2+ condition-variable GIL: a waiter asks the holder to drop it after the switch interval",
}

# One line per CPython minor version: (major, minor), GIL kind, traceable.
# The new kind is traced by the cffi extension (giltrace/_binding.py); the
# old one by the C core built as a plain library for 2.7's ctypes
# (giltrace/_build_oldgil.py, giltrace/oldgil.py).
# Versions between the first and the last line that are not listed (3.0-3.5)
# are treated as untraceable, like the lines marked False.
VERSIONS = (
    ((2, 7), "old", True),  # through the ctypes starter giltrace/oldgil.py
    ((3, 6), "new", False),
    ((3, 7), "new", False),
    ((3, 8), "new", False),
    ((3, 9), "new", True),
    ((3, 10), "new", True),
    ((3, 11), "new", True),
    ((3, 12), "new", True),
    ((3, 13), "new", True),
)

# Why a version cannot be traced; %(version)s is the full version, %(range)s
# the traceable versions ("3.9 to 3.13").
TOO_OLD = "CPython %(version)s is too old: giltrace needs %(range)s"
NOT_YET = "CPython %(version)s is not supported yet: giltrace knows the GIL of %(range)s"
# The same, as a bench cell's note: "tracing needs CPython 3.9-3.13; this is 2.7".
UNTRACED_NOTE = "tracing needs CPython %(range)s; this is %(version)s"
# The extension's own range, and the other kinds' traceable versions.
EXTENSION_KIND = "new"


def _minor(version):
    # type: (tuple) -> tuple
    return tuple(version[:2])


def entry(version):
    # type: (tuple) -> tuple
    """(GIL kind, traceable) of a (major, minor[, ...]) version; (None, False) if unknown."""
    for known, gil, traceable in VERSIONS:
        if known == _minor(version):
            return gil, traceable
    return None, False


def gil_kind(version):
    # type: (tuple) -> object
    """'old', 'new', or None for a version this table does not list."""
    return entry(version)[0]


def is_traceable(version):
    # type: (tuple) -> bool
    return entry(version)[1]


def known_range():
    # type: () -> tuple
    """(first, last) version of the table: what the bench's workloads run on."""
    return VERSIONS[0][0], VERSIONS[-1][0]


def traceable_range(kind=EXTENSION_KIND):
    # type: (str) -> tuple
    """(first, last) traceable version of GIL kind ``kind``, inclusive (by
    default the new kind's: what the cffi extension traces)."""
    traceable = [v for v, gil, ok in VERSIONS if ok and gil == kind]
    return traceable[0], traceable[-1]


def traceable_text():
    # type: () -> str
    """Every traceable version, as a bench note says it: '2.7 or 3.9-3.13'."""
    parts = []
    for kind in sorted(GIL_KINDS, key=lambda k: k != "old"):
        if any(ok and gil == kind for _, gil, ok in VERSIONS):
            first, last = traceable_range(kind)
            parts.append("%d.%d" % first if first == last else span_text(first, last))
    return " or ".join(parts)


def span_text(first, last, joiner="-"):
    # type: (tuple, tuple, str) -> str
    """((3, 9), (3, 13)) -> '3.9-3.13' (or '3.9 to 3.13' with joiner ' to ')."""
    return "%d.%d%s%d.%d" % (first + (joiner,) + last)


def refusal(version, version_text):
    # type: (tuple, str) -> object
    """Why the extension cannot trace this version (``version_text``: '3.8.18'), or None."""
    if is_traceable(version):
        return None
    first, last = traceable_range()
    template = NOT_YET if _minor(version) > last else TOO_OLD
    return template % {"version": version_text, "range": span_text(first, last, " to ")}


def untraced_note(version):
    # type: (tuple) -> object
    """A bench cell's note when its interpreter cannot be traced, or None."""
    if is_traceable(version):
        return None
    return UNTRACED_NOTE % {"range": traceable_text(), "version": "%d.%d" % _minor(version)}
