"""Saving a result: CSV, JSON, the printed tables and the trace files.

All files are written into a hidden sibling folder which is renamed to the
output directory only when complete, so a failed or interrupted run never
leaves a half-written output directory behind.

    runs.csv      one row per run (execute.COLUMNS)
    table.csv     one row per cell: median and min-max over repeats
    results.json  {"machine", "config", "messages", "runs", "table"}
    tables.txt    the tables as printed
    traces/       the GIL traces (--trace), one per cell or per worker process
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List

import pandas as pd

from ..errors import UsageError
from ..safefiles import open_new


def check_output_dir(path: str) -> None:
    """UsageError unless ``path`` can become a fresh output directory."""
    if os.path.islink(path):  # rmdir and rename act on the link, not the directory it names
        raise UsageError("-o %s: refusing a symbolic link" % path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise UsageError("-o %s: already exists and is not an empty directory" % path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError("-o %s: cannot create it (%s is not a writable directory)" % (path, parent))


def staging_dir(out_dir: str) -> str:
    """A hidden folder beside ``out_dir`` (same filesystem, so renaming is atomic)."""
    out_dir = os.path.abspath(out_dir)
    return tempfile.mkdtemp(prefix=".%s.partial-" % os.path.basename(out_dir), dir=os.path.dirname(out_dir))


def _records(frame: pd.DataFrame) -> List[Dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null


def save_results(result: Any, out_dir: str, rendered: str) -> str:
    """Write ``result`` to ``out_dir`` (which must not exist yet, or be empty).

    Trace files are moved from ``result.trace_dir`` into ``out_dir/traces``
    and the rows then name them relative to ``out_dir``.
    """
    check_output_dir(out_dir)
    stage = staging_dir(out_dir)
    try:
        runs = result.runs.copy()
        if result.trace_dir and os.path.isdir(result.trace_dir):
            os.makedirs(os.path.join(stage, "traces"))
            for name in sorted(os.listdir(result.trace_dir)):
                shutil.move(os.path.join(result.trace_dir, name), os.path.join(stage, "traces", name))
            runs["trace_files"] = [
                ",".join("traces/" + os.path.basename(f) for f in v.split(",")) if isinstance(v, str) and v else v
                for v in runs["trace_files"]
            ]
        with open_new(os.path.join(stage, "runs.csv"), binary=False) as f:
            runs.to_csv(f, index=False)
        with open_new(os.path.join(stage, "table.csv"), binary=False) as f:
            result.table.to_csv(f, index=False)
        with open_new(os.path.join(stage, "tables.txt"), binary=False) as f:
            f.write(rendered)
        document = {
            "machine": result.machine,
            "config": dataclasses.asdict(result.config),
            "messages": result.messages,
            "runs": _records(runs),
            "table": _records(result.table),
        }
        with open_new(os.path.join(stage, "results.json"), binary=False) as f:
            json.dump(document, f, indent=1, sort_keys=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp made it private
        try:
            if os.path.lexists(out_dir):
                os.rmdir(out_dir)  # empty, checked above (and by rmdir itself, should it have changed since)
            os.rename(stage, out_dir)
        except OSError as exc:
            raise UsageError("-o %s: cannot create it: %s" % (out_dir, exc.strerror or exc)) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out_dir
