"""`giltrace run` behaves as `python script.py`; bad input gets one clear line."""

import textwrap

import pytest

import giltrace

from ..conftest import run_python

PROG = textwrap.dedent(
    """
    import sys, threading
    print("argv", sys.argv[1:], "main", __name__, "file", __file__.endswith("prog.py"), "path0", sys.path[0])
    def cpu():
        n = 200000
        while n: n -= 1
    threading.Thread(target=cpu, name="worker").start()   # still running when the script ends
    if "--fail" in sys.argv: raise ValueError("boom")
    if "--exit" in sys.argv: sys.exit(int(sys.argv[-1]))
    """
)


@pytest.fixture
def prog(tmp_path):
    p = tmp_path / "prog.py"
    p.write_text(PROG)
    return p


def giltrace_cli(*args, cwd):
    return run_python(["-m", "giltrace"] + list(args), cwd=str(cwd))


@pytest.mark.parametrize("extra", [[], ["a", "-o", "b"], ["--exit", "7"], ["--fail"]])
def test_run_matches_plain_python(native, prog, tmp_path, extra):
    plain = run_python([str(prog)] + extra, cwd=str(tmp_path))
    traced = giltrace_cli("run", "-q", "-o", "t.gtr", str(prog), *extra, cwd=tmp_path)
    assert traced.returncode == plain.returncode
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr  # including the traceback of --fail
    t = giltrace.load(str(tmp_path / "t.gtr"))
    assert t.complete
    worker = t.threads().query("name == 'worker'")
    assert len(worker) == 1 and worker["hold_s"].iloc[0] > 0  # traced until the interpreter joined it


def test_run_module(native, tmp_path):
    (tmp_path / "mymod.py").write_text("import sys\nprint('mod', __name__, sys.argv[1:])\n")
    res = giltrace_cli("run", "-o", "m.gtr", "-m", "mymod", "--help", "x", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "mod __main__ ['--help', 'x']\n"
    assert "GIL events written to m.gtr" in res.stderr
    assert giltrace.load(str(tmp_path / "m.gtr")).complete


def test_run_python_passes_the_trace_options_on(native, prog, tmp_path):
    """``--python`` another 3.x: the program runs under that interpreter's own
    ``giltrace run`` with every trace option given here, not the defaults."""
    import sys

    args = ["run", "--python", sys.executable, "-q", "--no-locations", "--cpu-state", "--sample-period-ms", "2"]
    res = giltrace_cli(*args, "-o", "p.gtr", str(prog), "--exit", "4", cwd=tmp_path)
    assert res.returncode == 4 and res.stderr == "", res.stderr  # -q reached it too
    t = giltrace.load(str(tmp_path / "p.gtr"))
    assert t.meta["locations"] is False and t.meta["cpu_state"] is True
    assert t.meta["sample_period_ns"] == 2_000_000
    assert not t.cpu_state().empty and t.events["location"].eq(0).all()


def test_run_switch_interval_is_set_before_the_program(native, tmp_path):
    """--switch-interval: the program's first line sees it, and the trace records it."""
    p = tmp_path / "si.py"
    p.write_text("import sys\nprint(sys.getswitchinterval())\n")
    res = giltrace_cli("run", "-q", "--switch-interval", "0.002", "-o", "si.gtr", str(p), cwd=tmp_path)
    assert res.returncode == 0 and float(res.stdout) == 0.002, res.stderr
    assert giltrace.load(str(tmp_path / "si.gtr")).meta["switch_interval_s"] == 0.002


def test_default_output_name_and_summary(native, prog, tmp_path):
    res = giltrace_cli("run", str(prog), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = giltrace_cli("summary", "prog.gtr", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("trace     prog.gtr")
    assert any(line.startswith("worker ") for line in lines)
    assert any(line.startswith("MainThread ") for line in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run"], "nothing to run"),
        (["run", "missing.py"], "can't open file 'missing.py'"),
        (["run", "-o", "/nonexistent/dir/t.gtr", "PROG"], "directory /nonexistent/dir does not exist"),
        (["run", "--buffer-events", "0", "PROG"], "--buffer-events must be > 0"),
        (["run", "--sample-period-ms", "x", "PROG"], "invalid float value"),
        (["run", "--switch-interval", "0", "PROG"], "--switch-interval must be a positive number"),
        (["run", "--switch-interval", "inf", "PROG"], "--switch-interval must be a positive number"),
        (["run", "--switch-interval", "fast", "PROG"], "--switch-interval must be a positive number"),
        (["run", "--switch-interval", "1e-9", "PROG"], "--switch-interval must be between 1e-06 and 3600 seconds"),
        (["run", "--switch-interval", "1e300", "PROG"], "--switch-interval must be between 1e-06 and 3600 seconds"),
        (["summary", "PROG"], "not a giltrace trace file"),
        (["summary", "missing.gtr"], "cannot read missing.gtr"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_input_one_line_nonzero(prog, tmp_path, args, message):
    args = [str(prog) if a == "PROG" else a for a in args]
    res = giltrace_cli(*args, cwd=tmp_path)
    assert res.returncode != 0
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("giltrace: error: "), res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_summary_of_a_killed_trace_says_so(native, tmp_path):
    res = run_python("import giltrace, os; giltrace.start(%r); os._exit(0)" % str(tmp_path / "k.gtr"))
    assert res.returncode == 0
    out = giltrace_cli("summary", "k.gtr", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "incomplete trace" in out.stdout


def test_timeline_of_a_real_run_is_a_real_picture(native, tmp_path):
    import matplotlib.image as mpimg

    res = giltrace_cli("demo", "--seconds", "0.7", "-o", "d.gtr", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d.png").exists()  # the demo draws its own timeline
    out = giltrace_cli("timeline", "d.gtr", "-o", "d.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("wrote d.png")
    img = mpimg.imread(str(tmp_path / "d.png"))[..., :3]
    colours = {tuple(c) for c in (img.reshape(-1, 3) * 255).round().astype(int)[::7]}
    for hex_colour in ("#0072B2", "#E69F00"):  # holding and waiting are both on the picture
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, hex_colour
    bad = giltrace_cli("timeline", "d.gtr", "-o", "d.bmp", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown image format" in bad.stderr
    bad = giltrace_cli("timeline", "d.gtr", "--threads", "nobody", cwd=tmp_path)
    assert bad.returncode == 2 and "no thread named or numbered 'nobody'" in bad.stderr


def test_export_and_report_of_a_real_run(native, tmp_path):
    import json

    res = giltrace_cli("demo", "--seconds", "0.7", "-o", "d.gtr", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = giltrace_cli("export", "d.gtr", "-o", "d.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "d.json").read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert {"io", "cpu-0", "cpu-1", "MainThread"} <= names
    out = giltrace_cli("export", "d.gtr", "--format", "csv", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "d.csv").exists()
    rep = giltrace_cli("report", "d.gtr", "-o", "r.html", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "blame matrix" in page and "io" in page
    assert (tmp_path / "r-timeline.png").stat().st_size > 10_000
