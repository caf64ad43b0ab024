"""The threading experiments: workloads on pinned cores, serial vs threads vs
processes, under one or more interpreters, with optional GIL traces.

    from giltrace.bench import BenchConfig, run_bench, save_results
    result = run_bench(BenchConfig(workloads=["cpu", "io"], cores=[1, 2], ns=[1, 2, 4]))
    print(result.render())
    result.runs, result.table          # pandas DataFrames

Modules, in the order a run uses them: ``config`` (what to run), ``interpreters``
(check each --python), ``pinning`` (which CPUs), ``cells`` (the grid),
``execute`` (one pinned child, watched by ``monitor``), ``spread`` and
``contention`` (what a run's numbers mean), ``aggregate`` (repeats -> cells),
``machine`` and ``output`` (saving), ``view`` (what the renderers get: the
text tables are giltrace/render/bench_tables.py, the HTML report
giltrace/render/bench_report.py).
The workloads themselves, which the child interpreters run, are in
``giltrace.bench.workloads``.
"""

from .config import BenchConfig
from .output import save_results
from .runner import BenchResult, render, run_bench

__all__ = ["BenchConfig", "BenchResult", "render", "run_bench", "save_results"]
