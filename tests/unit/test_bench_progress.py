"""The progress reporter: tqdm when present, plain lines otherwise, or nothing."""

import io
import sys

from giltrace.bench.progress import Progress


def test_disabled_prints_nothing():
    stream = io.StringIO()
    with Progress(2, enabled=False, stream=stream) as p:
        p.start_cell("a")
        p.finish_cell()
    assert stream.getvalue() == ""


def test_without_tqdm_one_line_per_cell_with_an_eta(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` fail
    stream = io.StringIO()
    with Progress(3, stream=stream) as p:
        for label in ("a", "b"):
            p.start_cell(label)
            p.finish_cell()
        p.write("a message")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/3] a"
    assert lines[1].startswith("[2/3, ~0m") and lines[1].endswith("s left] b")
    assert lines[2] == "a message"


def test_with_tqdm_the_bar_counts_cells():
    stream = io.StringIO()
    with Progress(2, stream=stream) as p:
        p.start_cell("cpu cores=1")
        p.finish_cell()
        assert p.done == 1
    assert "1/2 cells" in stream.getvalue().replace("\r", "\n") or p._bar is None
