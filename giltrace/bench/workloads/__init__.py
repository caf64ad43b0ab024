"""The threading experiments' workloads, as plain Python.

Everything in this package runs unchanged on any CPython from 2.7 to 3.13,
because the experiments compare interpreters: no f-strings, no type hints,
and no imports from the rest of giltrace (tracing is optional and guarded),
except the import-free tables that ``shared`` reads by path.

Each cell of an experiment is one run of ``child.py`` as a script::

    python giltrace/bench/workloads/child.py --workload cpu --mode thread --n 2 --load 1000000

which prints one JSON line of results.  The modules:

- ``registry`` every workload and its properties (workers, fsync or not,
               grid or latency, table heading): adding one is one entry there
- ``kernels``  the work itself: the counting loop and the file I/O loop
- ``plan``     which workers a workload has (roles, kinds, amounts)
- ``modes``    running the workers serially, as threads, or as processes
- ``latency``  the convoy experiment: one I/O thread beside K CPU competitors
- ``procinfo`` affinity, CPU times, clock and interpreter facts
- ``gtrace``   optional GIL tracing through giltrace, where it can run
- ``shared``   the giltrace modules shared with the runner, loaded 2.7-safely
- ``child``    the command line that ties them together
"""
