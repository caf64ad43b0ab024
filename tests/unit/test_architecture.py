"""The import rules of docs/architecture.md, checked on the source (AST)."""

import ast
import os
import re

import pytest

from ..conftest import REPO

PKG = os.path.join(REPO, "giltrace")


def modules():
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield rel[:-9] if rel.endswith(".__init__") else rel, path


def _nodes(tree, top_level):
    """All nodes, or (top_level) those outside function bodies: what runs at import."""
    if not top_level:
        yield from ast.walk(tree)
        return
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(c for c in ast.iter_child_nodes(node) if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def imports_of(name, path, top_level=False):
    """Absolute names of what a module imports: everywhere, or only at import time."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    with open(path) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in _nodes(tree, top_level):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(mod + "." + a.name for a in node.names)  # `from . import x` imports module x
    return out


ALL = dict(modules())


def matching(pattern):
    return [n for n in ALL if re.fullmatch(pattern, n)]


def offending(pattern, forbidden, top_level=False):
    bad = []
    for name in matching(pattern):
        for imp in imports_of(name, ALL[name], top_level):
            if any(imp == f or imp.startswith(f + ".") for f in forbidden):
                bad.append("%s imports %s" % (name, imp))
    return bad


def test_only_the_binding_imports_the_extension():
    users = [n for n in ALL if any(i == "giltrace._native" or i.startswith("giltrace._native.") for i in imports_of(n, ALL[n]))]
    assert users == ["giltrace._binding"]


# What runs at interpreter start-up (GILTRACE), or inside another program's
# process (giltrace attach's agent and bootstrap): nothing heavy at import.
START_UP = r"giltrace\.(tracer|autostart|safefiles|layout|_binding|errors|interpreters|attach|attach\.agent|attach\.bootstrap)"


def test_what_runs_at_start_up_imports_nothing_heavy():
    """At import time (a trace stopping may load the model later)."""
    assert (
        offending(
            START_UP,
            [
                "numpy",
                "pandas",
                "matplotlib",
                "typing",
                "threading",
                "json",
                "platform",
                "socket",
                "sysconfig",
                "giltrace.model",
                "giltrace.render",
                "giltrace.cli",
            ],
            top_level=True,
        )
        == []
    )


def test_analysis_and_model_do_not_reach_up():
    assert (
        offending(
            r"giltrace\.(analysis|episodes|groups|diagnosis|predictions|fileformat|layout)",
            ["giltrace.render", "giltrace.cli", "giltrace.tracer", "giltrace.bench", "matplotlib"],
        )
        == []
    )


def test_the_model_reaches_up_only_for_its_convenience_methods():
    """Trace.plot_timeline() and Trace.diagnose() import their layer when called."""
    assert (
        offending(
            r"giltrace\.model",
            ["giltrace.render", "giltrace.cli", "giltrace.tracer", "giltrace.bench", "giltrace.diagnosis", "matplotlib"],
            top_level=True,
        )
        == []
    )
    lazy = {i for i in imports_of("giltrace.model", ALL["giltrace.model"]) if i.startswith(("giltrace.render", "giltrace.diagnosis"))}
    assert {i.rsplit(".", 1)[0] for i in lazy} <= {"giltrace.render.timeline", "giltrace.diagnosis", "giltrace.render", "giltrace"}


def test_renderers_do_not_record_or_parse_arguments():
    assert offending(r"giltrace\.render(\..*)?", ["giltrace.cli", "giltrace.tracer", "giltrace.autostart", "giltrace._binding"]) == []


def test_renderers_see_the_bench_only_through_its_view():
    bad = [
        b for b in offending(r"giltrace\.render(\..*)?", ["giltrace.bench"]) if not re.search(r" giltrace\.bench(\.view(\.\w+)?)?$", b)
    ]  # `from ..bench import view` names the package too
    assert bad == []


def test_nothing_but_entry_points_imports_the_cli():
    users = [
        n
        for n in ALL
        if not n.startswith("giltrace.cli")
        and n not in ("giltrace.__main__",)
        and any(i == "giltrace.cli" or i.startswith("giltrace.cli.") for i in imports_of(n, ALL[n]))
    ]
    assert users == []


def test_the_bench_does_not_import_the_cli():
    assert offending(r"giltrace\.bench(\..*)?", ["giltrace.cli"]) == []


@pytest.mark.parametrize("name", matching(r"giltrace\.bench\.workloads\..*"))
def test_workloads_run_standalone(name):
    """Child scripts (CPython 2.7 too): only each other, and giltrace's
    version and CPU tables through shared.py."""
    ours = [i for i in imports_of(name, ALL[name]) if i.startswith("giltrace") and not i.startswith("giltrace.bench.workloads")]
    allowed = {"giltrace.interpreters", "giltrace.cpus", "giltrace"}
    assert set(ours) <= allowed or name.endswith("shared"), ours


def test_layout_constants_match_the_c_contract(native):
    from giltrace import layout

    ffi, lib = native
    assert int.from_bytes(layout.CHUNK_MAGIC, "little") == lib.GT_CHUNK_MAGIC
    assert layout.CHUNK.size == lib.GT_CHUNK_HEADER_SIZE
    assert (layout.CHUNK_EVENTS, layout.CHUNK_SAMPLES, layout.CHUNK_FOOTER, layout.CHUNK_LOCATIONS, layout.CHUNK_OS_NAMES) == (
        lib.GT_CHUNK_EVENTS,
        lib.GT_CHUNK_SAMPLES,
        lib.GT_CHUNK_FOOTER,
        lib.GT_CHUNK_LOCATIONS,
        lib.GT_CHUNK_OS_NAMES,
    )
    assert (layout.EV_WAIT, layout.EV_ACQUIRE, layout.EV_RELEASE, layout.EV_DROP_REQUEST) == (
        lib.GT_EV_WAIT,
        lib.GT_EV_ACQUIRE,
        lib.GT_EV_RELEASE,
        lib.GT_EV_DROP_REQUEST,
    )
    assert (layout.FLAG_SWITCHED, layout.FLAG_CONTENDED, layout.FLAG_WAIT_UNKNOWN) == (
        lib.GT_FLAG_SWITCHED,
        lib.GT_FLAG_CONTENDED,
        lib.GT_FLAG_WAIT_UNKNOWN,
    )
    import numpy as np

    assert np.dtype(layout.EVENT_FIELDS).itemsize == ffi.sizeof("gt_event")
    assert np.dtype(layout.SAMPLE_FIELDS).itemsize == ffi.sizeof("gt_sample")
    for fields, ctype in ((layout.EVENT_FIELDS, "gt_event"), (layout.SAMPLE_FIELDS, "gt_sample")):
        assert [f for f, _ in fields] == [f for f, _ in ffi.typeof(ctype).fields]
        assert [np.dtype(fields).fields[f][1] for f, _ in fields] == [ffi.offsetof(ctype, f) for f, _ in fields]
