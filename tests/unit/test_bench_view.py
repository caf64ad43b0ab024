"""The bench's data interface to its renderers (giltrace/bench/view.py):
the same view from a fresh result and from a saved directory."""

import json
import re

import pandas as pd

from giltrace.bench import machine, view
from giltrace.bench.aggregate import TABLE_COLUMNS
from giltrace.bench.config import BenchConfig
from giltrace.bench.execute import COLUMNS
from giltrace.render.bench_report import header
from giltrace.render.bench_tables import machine_lines


def saved(tmp_path, config, described):
    """A minimal output directory, as bench/output.py writes it (no runs)."""
    doc = {"machine": described, "config": config.__dict__, "messages": ["a notice"], "runs": [], "table": []}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    return str(tmp_path)


def test_the_report_header_shows_what_describe_writes(tmp_path):
    # describe() writes "date_utc"; the report once looked for "date" and never showed it.
    described = machine.describe([], None)
    loaded = view.load(saved(tmp_path, BenchConfig(workloads=["cpu"]), described))
    facts = dict(loaded.headline)
    assert set(facts) == {"date", "cpu_model", "usable_cpus", "kernel"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", facts["date"])
    page = "".join(header(loaded, "out/x"))
    assert "date: " + described["date_utc"] in page and "a notice" in page
    assert machine_lines(described)[0].startswith("machine: ")


def test_sections_follow_the_config_and_the_registry(tmp_path):
    config = BenchConfig(workloads=["mix", "latency-sync"], cores=[1, 2], ns=[1, 4], modes=["thread"], competitors=[0, 2], load=7)
    loaded = view.load(saved(tmp_path, config, {}))
    grid, latency = loaded.sections
    assert (grid.workload, grid.latency, grid.cores, grid.ns, grid.modes) == ("mix", False, [1, 2], [1, 4], ["thread"])
    assert grid.heading == view.titles(config)["mix"]
    assert latency.latency and latency.latency_rows == [(0, "alone"), (2, "thread"), (2, "procs")]
    assert loaded.headline == [] and loaded.pythons == [] and loaded.repeat == 3


def test_a_cell_is_found_by_its_keys():
    row = {c: None for c in TABLE_COLUMNS}
    row.update({"workload": "cpu", "python": "3.11.7", "cores": 1, "n": 2, "mode": "thread", "wall_median": 1.5})
    v = view.BenchView(
        headline=[],
        machine={},
        messages=[],
        pythons=["3.11.7"],
        repeat=1,
        traced=False,
        sections=[],
        table=pd.DataFrame([row], columns=TABLE_COLUMNS),
        runs=pd.DataFrame(columns=COLUMNS),
    )
    assert v.cell("cpu", "3.11.7", 1, 2, "thread")["wall_median"] == 1.5
    assert v.cell("cpu", "3.11.7", 1, 2, "procs") is None
