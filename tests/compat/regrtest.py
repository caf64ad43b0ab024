"""CPython's own threading regression tests, untraced and with GILTRACE set:
the results must be the same, in about the same time.

    make compat-regrtest                      # 3.9, 3.11, 3.12, 3.13 where pyenv has them
    python tests/compat/regrtest.py --versions 3.12 --tests test_threading

For each version it builds a virtual environment under build/compat/ with
giltrace installed as a user would (``pip install .``: the extension and the
autostart .pth in site-packages), runs ``python -m test -j0 TESTS`` twice,
compares the per-test verdicts, and checks every trace file the traced run
left (one per process) loads and is complete.  Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.capabilities import probe  # noqa: E402

TESTS = ["test_threading", "test_thread", "test_threadsignals", "test_queue", "test_socketserver", "test_threading_local"]
VERSIONS = ["3.9", "3.11", "3.12", "3.13"]
VERDICT = re.compile(
    r"^(?:\d+:\d+:\d+ (?:load avg: [\d.]+ )?)?\[\s*\d+/\d+(?:/\d+)?\] (test_\w+)(?: (passed|failed|skipped|crashed)| (?:failed|crashed)\b.*)?",
    re.M,
)


def setup_venv(python: str, version: str) -> str:
    venv = os.path.join(REPO, "build", "compat", "venv-" + version)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([python, "-m", "venv", venv], check=True)
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip", "cffi>=1.15", "setuptools>=61", "wheel"],
            check=True,
        )
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-build-isolation", "--force-reinstall", REPO],
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return py


def run_tests(py: str, tests: "list[str]", env: "dict[str, str]", timeout: float) -> "tuple[float, dict[str, str], str]":
    t0 = time.monotonic()
    # -w: a test that fails is re-run once, verbosely (regrtest's own answer to flaky tests on a busy machine)
    res = subprocess.run(
        [py, "-m", "test", "-j0", "-w", "--timeout", "300"] + tests,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    elapsed = time.monotonic() - t0
    out = res.stdout + res.stderr
    verdicts = {}
    for line in out.splitlines():
        m = re.search(r"\] (test_\w+)(.*)$", line)
        if m:
            rest = m.group(2)
            verdicts[m.group(1)] = "failed" if ("failed" in rest or "crashed" in rest) else "ok"
    # "FAILURE then SUCCESS": a test failed, and passed when re-run (-w); the
    # verdict that counts is the last one, the flaky test is reported.
    result = re.search(r"Tests? result: (.+)", out)
    text = result.group(1).replace("=", " ").split() if result else []  # "SUCCESS ==", "FAILURE then SUCCESS =="
    final = text[-1] if text else "rc=%d" % res.returncode
    if result and " then " in result.group(1):
        rerun = re.findall(r"Re-running (test_\w+)", out) or re.findall(r"(test_\w+)\s+(?:failed|crashed)", out)
        final += " (re-run: %s)" % ",".join(sorted(set(rerun))) if rerun else " (after a re-run)"
    return elapsed, verdicts, final


def check_traces(directory: str) -> "tuple[int, list[str]]":
    """How many trace files the traced run left, and the ones that are not
    complete: some tests kill or crash their child processes on purpose
    (SIGKILL, abort), and those traces load up to their last chunk.  A
    process that giltrace made hang would show as a different verdict."""
    from giltrace import IncompleteTraceWarning, load

    paths = sorted(glob.glob(os.path.join(directory, "*.gtr")))
    bad = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IncompleteTraceWarning)
                trace = load(path)
                if not trace.complete:
                    bad.append(
                        "%s (incomplete: %s; argv %s)"
                        % (os.path.basename(path), trace.meta.get("incomplete_reason"), " ".join(trace.meta.get("argv", []))[:200])
                    )
        except Exception as exc:
            bad.append("%s (%s)" % (os.path.basename(path), exc))
    return len(paths), bad


def main(argv: "list[str] | None" = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--versions", default=",".join(VERSIONS))
    p.add_argument("--tests", default=",".join(TESTS))
    p.add_argument("--timeout", type=float, default=900, help="seconds per regrtest run")
    args = p.parse_args(argv)
    tests = args.tests.split(",")
    failures = 0
    rows = []
    for version in args.versions.split(","):
        python, missing = probe("python" + version)
        if missing:
            print("CPython %s: skipped, %s" % (version, missing))
            continue
        py = setup_venv(python, version)
        env = {k: v for k, v in os.environ.items() if k not in ("GILTRACE", "PYTHONPATH", "PYTHONHOME")}
        plain_s, plain, plain_result = run_tests(py, tests, env, args.timeout)
        with tempfile.TemporaryDirectory(prefix="giltrace-regrtest-") as tmp:
            traced_s, traced, traced_result = run_tests(py, tests, dict(env, GILTRACE=os.path.join(tmp, "rt.gtr")), args.timeout)
            n_traces, bad = check_traces(tmp)
        differ = sorted(t for t in set(plain) | set(traced) if plain.get(t) != traced.get(t))
        slow = traced_s > 2 * plain_s + 10
        unreadable = [b for b in bad if "(incomplete:" not in b]
        ok = not differ and not unreadable and not slow and plain_result.split()[0] == traced_result.split()[0]
        failures += not ok
        rows.append(
            (version, plain_result, "%.1f" % plain_s, traced_result, "%.1f" % traced_s, n_traces, len(bad), "ok" if ok else "DIFFERENT")
        )
        for t in differ:
            print("  %s %s: untraced %s, traced %s" % (version, t, plain.get(t), traced.get(t)))
        for b in bad[:10]:
            print("  %s trace %s" % (version, b))
    print("%-8s %-34s %9s %-34s %9s %7s %11s %s" % ("python", "untraced", "seconds", "traced", "seconds", "traces", "incomplete", ""))
    for r in rows:
        print("%-8s %-34s %9s %-34s %9s %7d %11d %s" % r)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
