"""Predicted vs measured: a program traced as it is, its findings' predicted
wait under ``sys.setswitchinterval(0.001)``, then the same program rerun
with ``giltrace run --switch-interval 0.001`` and the same threads' takes
measured (docs/profiling.md, "Predictions, checked by a rerun").

    .venv/bin/python benchmarks/check_predictions.py [--runs 3] -- program.py [args...]

Prints one row per run pair: predicted and measured p50/p99 of the waiting
threads' takes (wakes when the trace has them), and the error of the p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import giltrace  # noqa: E402
from giltrace import predictions  # noqa: E402


def trace(program, out, interval=None):
    cmd = [sys.executable, "-m", "giltrace", "run", "-q", "-o", out]
    if interval:
        cmd += ["--switch-interval", str(interval)]
    subprocess.run(cmd + program, check=True, stdout=subprocess.DEVNULL)
    return giltrace.load(out, warn=False)


def measured(t, names, wakes, culprit=None):
    """The same takes the prediction was about (wakes, or blocking waits; for
    a long_hold_c finding, ``culprit`` (location, holders): those during its holds), in the rerun."""
    spans = t.intervals()
    tids = [tid for tid, n in t.names.items() if n in set(names)]
    w = predictions._takes(t, spans, tids, None, wakes=wakes)
    if culprit is not None:
        holds = predictions.culprit_holds(t, spans, culprit[0], [k for k, n in t.names.items() if n in set(culprit[1])])
        w = w[predictions._overlap(holds, w) > 0]
    w = w["duration_ns"].to_numpy() / 1e6
    return (float(np.percentile(w, 50)), float(np.percentile(w, 99)), len(w)) if len(w) else (float("nan"),) * 2 + (0,)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interval", type=float, default=predictions.NEW_SWITCH_INTERVAL_S)
    ap.add_argument("program", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    program = [p for p in a.program if p != "--"]
    errs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            d = trace(program, os.path.join(tmp, "a.gtr")).diagnose()
            pred = [(p, f) for f in d.trace_findings for p in f.predictions if p["change"] == "switch_interval"]  # the whole run
            if not pred:
                print("run %d: no switch-interval prediction (findings: %s)" % (i, [f.kind for f in d.problems]))
                continue
            p, f = pred[0]
            mode = f.mode or f.kind
            culprit = (f.culprits[0].location, f.culprits[0].threads) if f.kind == "long_hold_c" and f.culprits else None
            m50, m99, n = measured(trace(program, os.path.join(tmp, "b.gtr"), a.interval), p["threads"], f.mode == "latency", culprit)
            err = (p["wait_p50_ms"] - m50) / m50 if m50 else float("nan")
            errs.append(abs(err))
            print(
                "run %d  %-20s %-11s now p50 %6.2f p99 %6.2f | predicted p50 %6.2f p99 %6.2f | rerun p50 %6.2f p99 %6.2f (%d takes) | p50 error %+.0f%%"
                % (
                    i,
                    ",".join(p["threads"])[:20],
                    mode,
                    p["now_p50_ms"],
                    p["now_p99_ms"],
                    p["wait_p50_ms"],
                    p["wait_p99_ms"],
                    m50,
                    m99,
                    n,
                    100 * err,
                )
            )
    if errs:
        print("median |p50 error| %.0f%% over %d runs" % (100 * statistics.median(errs), len(errs)))


if __name__ == "__main__":
    main()
