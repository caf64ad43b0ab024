"""Thread names in figures (timeline lanes, wait-CDF legend): escaped and
bounded.  A crafted trace with 70,000-character names holding ESC made
`giltrace report` run past 60 s and matplotlib's missing-glyph warnings
echo raw escapes to the terminal (giltrace/textsafe.py)."""

from __future__ import annotations

from giltrace.textsafe import plot_label


def test_plot_label_escapes_and_bounds():
    name = "\x1b]0;TITLE\x07\x1b[2Jevil" + "x" * 70000
    label = plot_label(name)
    assert "\x1b" not in label and "\x07" not in label and len(label) <= 80
    assert label.startswith("\\x1b]0;TITLE\\x07") and label.endswith("\u2026")
    assert plot_label("req-17") == "req-17"
