"""Always-on GIL metrics: per-thread counters kept by the C hooks, read on
demand, grouped by thread pool, exported to Prometheus, OpenTelemetry or a
JSON-lines log (docs/metrics.md).

    with giltrace.monitor():          # or giltrace.monitor() ... .stop()
        serve()
    m = giltrace.metrics()            # a Metrics snapshot: .threads, .groups, .total, .contention
    giltrace.metrics.register()       # a Prometheus collector on the default registry

Unlike a trace, nothing is buffered: each GIL transition adds to its
thread's counters in C (csrc/metrics.c), so the cost per transition is a
few nanoseconds and memory does not grow with run time.  Threads that exit
are folded into their group's totals the next time the metrics are read.
"""

from __future__ import annotations

import _thread
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ._binding import native
from .errors import GiltraceError, TraceRunning
from .groups import group_key

MAX_GROUPS = 64  # label cardinality: groups beyond this are counted as "other"
FOLD_AFTER_EXITED = 256  # of the C core's 1024 slots (csrc/metrics.c)
DEFAULT_ALERT_MS = 50.0


@dataclass
class Counters:
    """GIL time of one thread, one group, or the whole process."""

    wait_s: float = 0.0  # every take of the GIL, blocking or not
    hold_s: float = 0.0
    acquires: int = 0
    waits: int = 0  # takes that had to block
    drop_requests: int = 0  # asked to let go while holding it: forced switches
    histogram: List[int] = field(default_factory=list)  # blocking waits per bucket (BOUNDS_S, then +Inf)

    def add(self, other: "Counters") -> None:
        self.wait_s += other.wait_s
        self.hold_s += other.hold_s
        self.acquires += other.acquires
        self.waits += other.waits
        self.drop_requests += other.drop_requests
        if len(self.histogram) < len(other.histogram):
            self.histogram += [0] * (len(other.histogram) - len(self.histogram))
        for i, n in enumerate(other.histogram):
            self.histogram[i] += n

    def wait_quantile(self, q: float) -> Optional[float]:
        """The q-quantile of blocking waits (seconds): the upper bound of the
        histogram bucket it falls in; None without blocking waits."""
        total = sum(self.histogram)
        if not total:
            return None
        rank, seen = q * total, 0
        for i, n in enumerate(self.histogram):
            seen += n
            if seen >= rank and n:
                return BOUNDS_S[i] if i < len(BOUNDS_S) else float("inf")
        return float("inf")

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["wait_p50_s"] = self.wait_quantile(0.5)
        d["wait_p99_s"] = self.wait_quantile(0.99)
        return d


@dataclass
class ThreadMetrics(Counters):
    tid: int = 0
    name: str = ""
    group: str = ""
    alive: bool = True


@dataclass
class GroupMetrics(Counters):
    group: str = ""
    threads: int = 0  # alive now
    exited: int = 0  # threads of this group that have exited since the start


@dataclass
class Metrics:
    """One reading: per thread (alive ones), per group (alive and exited), the process."""

    elapsed_s: float
    contended_s: float  # wall time during which some thread was blocked waiting
    threads: List[ThreadMetrics]
    groups: List[GroupMetrics]
    total: Counters

    @property
    def contention(self) -> float:
        """Share of wall time during which some thread waited for the GIL
        (the figure gilknocker estimates by polling), 0..1."""
        return self.contended_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s,
            "contended_s": self.contended_s,
            "contention": self.contention,
            "total": self.total.as_dict(),
            "groups": [dict(g.as_dict(), group=g.group, threads=g.threads, exited=g.exited) for g in self.groups],
            "threads": [dict(t.as_dict(), tid=t.tid, name=t.name, group=t.group, alive=t.alive) for t in self.threads],
        }


@dataclass
class Alert:
    """A wait, or a hold while others waited, longer than the threshold."""

    kind: str  # "wait" or "hold"
    time_s: float  # since the metrics started
    duration_s: float
    thread: str  # the waiter (wait) or the holder (hold)
    other: Optional[str]  # wait: the thread that held the GIL last before the waiter got it
    location: Optional[str]  # hold: "file:line (function)" where the holder let go

    def __str__(self) -> str:
        if self.kind == "hold":
            return "GIL held %.1f ms by %s while other threads waited, let go at %s" % (
                1e3 * self.duration_s,
                self.thread,
                self.location or "?",
            )
        return "%s waited %.1f ms for the GIL (last held by %s)" % (self.thread, 1e3 * self.duration_s, self.other or "?")


def _bounds() -> Tuple[float, ...]:
    try:
        ffi, lib = native()
    except GiltraceError:
        return ()
    return tuple(lib.gt_metrics_bound_ns(i) / 1e9 for i in range(lib.GT_METRICS_BUCKETS - 1))


BOUNDS_S: Tuple[float, ...] = ()  # upper bounds of the wait histogram, seconds (filled at start)

_lock = _thread.allocate_lock()
_active: "Optional[Monitor]" = None


class Monitor:
    """The metrics mode of the native core, on from ``start()`` to ``stop()``.

    ``alert_ms``: report each wait, and each hold while another thread
    waited, longer than this (None: no alerts) to ``on_alert`` (default: a
    warning on the ``giltrace`` logger), from a small thread that polls
    every ``alert_poll_s``.
    """

    def __init__(self, *, alert_ms: Optional[float] = None, on_alert: Optional[Callable[[Alert], None]] = None, alert_poll_s: float = 0.1):
        if alert_ms is not None and alert_ms <= 0:
            raise ValueError("alert_ms must be > 0 (or None for no alerts)")
        self.alert_ms = alert_ms
        self.on_alert = on_alert or _log_alert
        self.alert_poll_s = alert_poll_s
        self._names: Dict[int, str] = {}
        self._exited: Dict[str, GroupMetrics] = {}
        self._running = False
        self._poller: Optional[Any] = None
        self._read_lock = _thread.allocate_lock()
        self._start_ns = 0

    def start(self) -> "Monitor":
        global _active, BOUNDS_S
        ffi, lib = native()
        with _lock:
            if _active is not None:
                raise TraceRunning("GIL metrics are already being collected in this process")
            err = ffi.new("char[256]")
            rc = lib.gt_metrics_start(int((self.alert_ms or 0) * 1e6), err, len(err))
            if rc != 0:
                raise GiltraceError("cannot start the GIL metrics: " + ffi.string(err).decode(errors="replace"))
            BOUNDS_S = BOUNDS_S or _bounds()
            from . import tracer

            self._names = tracer._python_thread_names()
            tracer._thread_hook.add(self._on_thread_start)
            _install_fork_hook()
            self._running = True
            _active = self
            if self.alert_ms is not None:
                self._start_poller()
        return self

    def stop(self) -> None:
        global _active
        with _lock:
            if not self._running:
                return
            from . import tracer

            self._running = False
            _active = None
            tracer._thread_hook.discard(self._on_thread_start)
            native()[1].gt_metrics_stop()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> "Monitor":
        return self if self._running else self.start()  # giltrace.monitor() has started it already

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _on_thread_start(self, tid: int, name: str) -> None:
        self._names[tid] = name
        # Thread churn: fold exited threads into their groups before the
        # slots run out (the rest would share one anonymous slot), and keep
        # the name map to the threads that can still be read.
        if native()[1].gt_metrics_exited() > FOLD_AFTER_EXITED:
            self.read()
            if len(self._names) > 4 * FOLD_AFTER_EXITED:
                live = _live_names()
                self._names = {t: n for t, n in self._names.items() if t in live}

    # -- reading ------------------------------------------------------------

    def read(self) -> Metrics:
        """A snapshot of the counters.  Exited threads are folded into their
        group (read once by C, then their slot is free for new threads)."""
        ffi, lib = native()
        with self._read_lock:
            n_max = lib.GT_METRICS_SLOTS
            buf = ffi.new("gt_metrics_thread[]", n_max)
            totals = ffi.new("gt_metrics_totals *")
            n = lib.gt_metrics_read(buf, n_max, totals)
            scale = totals.ns_per_tick / 1e9
            live_names = _live_names()
            self._names.update(live_names)
            threads: List[ThreadMetrics] = []
            for i in range(n):
                rec = buf[i]
                tid = int(rec.tid)
                name = self._names.get(tid) or (_os_name(tid) if tid else "") or ("thread-%d" % tid if tid else "(other threads)")
                counters = ThreadMetrics(
                    wait_s=rec.wait_ticks * scale,
                    hold_s=rec.hold_ticks * scale,
                    acquires=int(rec.acquires),
                    waits=int(rec.waits),
                    drop_requests=int(rec.drop_requests),
                    histogram=list(rec.hist),
                    tid=tid,
                    name=name,
                    group=self._group_label(name),
                    alive=rec.state == 1,
                )
                if counters.alive:
                    threads.append(counters)
                else:  # exited: from now on part of its group's history
                    self._exited.setdefault(counters.group, GroupMetrics(group=counters.group)).add(counters)
                    self._exited[counters.group].exited += 1
                    self._names.pop(tid, None)
            groups: Dict[str, GroupMetrics] = {}
            for g, past in self._exited.items():
                groups[g] = GroupMetrics(group=g, exited=past.exited)
                groups[g].add(past)
            for t in threads:
                g = groups.setdefault(t.group, GroupMetrics(group=t.group))
                g.add(t)
                g.threads += 1
            total = Counters()
            for g in groups.values():
                total.add(g)
            elapsed = (totals.now_ns - totals.start_ns) / 1e9
            return Metrics(
                elapsed_s=elapsed,
                contended_s=totals.contended_ticks * scale,
                threads=threads,
                groups=sorted(groups.values(), key=lambda g: -g.wait_s),
                total=total,
            )

    def _group_label(self, name: str) -> str:
        """A thread's group (its pool's name, else its own name), at most
        MAX_GROUPS distinct ones: beyond them, "other"."""
        label = group_key(name) or name
        known = set(self._exited)
        if label in known or len(known) < MAX_GROUPS:
            return label
        return "other"

    # -- alerts ---------------------------------------------------------------

    def _start_poller(self) -> None:
        import threading

        self._poller = threading.Thread(target=self._poll_alerts, name="giltrace-alerts", daemon=True)
        self._poller.start()

    def _poll_alerts(self) -> None:
        ffi, lib = native()
        buf = ffi.new("gt_metrics_alert[]", 64)
        while self._running:
            time.sleep(self.alert_poll_s)
            self._deliver(ffi, lib, buf)
        self._deliver(ffi, lib, buf)

    def _deliver(self, ffi: Any, lib: Any, buf: Any) -> None:
        while True:
            n = lib.gt_metrics_alerts(buf, 64)
            for i in range(n):
                a = buf[i]
                names = {**self._names, **_live_names()}
                location = None
                if a.kind == 2 and a.line:
                    location = "%s:%d (%s)" % (
                        ffi.string(a.file).decode(errors="replace"),
                        a.line,
                        ffi.string(a.function).decode(errors="replace"),
                    )
                alert = Alert(
                    kind="wait" if a.kind == 1 else "hold",
                    time_s=a.time_ns / 1e9,
                    duration_s=a.duration_ns / 1e9,
                    thread=names.get(a.tid, "thread-%d" % a.tid),
                    other=names.get(a.other_tid, "thread-%d" % a.other_tid) if a.other_tid else None,
                    location=location,
                )
                try:
                    self.on_alert(alert)
                except Exception:  # a broken callback must not stop the alerts
                    pass
            if n < 64:
                return


def _log_alert(alert: Alert) -> None:
    import logging

    logging.getLogger("giltrace").warning("%s", alert)


def _live_names() -> Dict[int, str]:
    from .tracer import _python_thread_names

    return _python_thread_names()


def _os_name(tid: int) -> str:
    try:
        with open("/proc/self/task/%d/comm" % tid) as f:
            return f.read().strip()
    except OSError:
        return ""


_fork_hook_installed = False


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_installed = True


def _after_fork_in_child() -> None:
    # C forgot the parent's counters (csrc/control.c, atfork_child): the child
    # is not monitored unless it starts its own (GILTRACE_METRICS does).
    global _active, _lock
    _lock = _thread.allocate_lock()
    if _active is not None:
        _active._running = False
        _active._poller = None
        _active = None


# -- the public functions -----------------------------------------------------


def monitor(**options: Any) -> Monitor:
    """Start collecting GIL metrics now; ``.stop()`` (or use ``with``)."""
    return Monitor(**options).start()


def active() -> Optional[Monitor]:
    return _active


def snapshot() -> Metrics:
    """``giltrace.metrics()``: the running monitor's counters now."""
    if _active is None:
        raise GiltraceError("no GIL metrics are being collected: start them with giltrace.monitor()")
    return _active.read()


# -- exporters ----------------------------------------------------------------


class PrometheusCollector:
    """Exposes the running monitor's counters in Prometheus' conventions:
    ``*_seconds_total`` and ``*_total`` counters and a histogram of blocking
    waits, each by ``thread_group`` (a pool's name, or a lone thread's)."""

    def __init__(self, prefix: str = "giltrace"):
        self.prefix = prefix

    def describe(self) -> List[Any]:
        return []  # metrics appear with the monitor; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        mon = _active
        if mon is None:
            return
        m = mon.read()
        p = self.prefix
        fams = {
            "wait": CounterMetricFamily(
                p + "_gil_wait_seconds", "Time threads spent taking the GIL (blocking or not)", labels=["thread_group"]
            ),
            "hold": CounterMetricFamily(p + "_gil_hold_seconds", "Time threads held the GIL", labels=["thread_group"]),
            "acq": CounterMetricFamily(p + "_gil_acquisitions", "Times threads took the GIL", labels=["thread_group"]),
            "waits": CounterMetricFamily(p + "_gil_waits", "Takes of the GIL that had to block", labels=["thread_group"]),
            "drops": CounterMetricFamily(
                p + "_gil_drop_requests", "Times a holder was asked to let the GIL go (forced switches)", labels=["thread_group"]
            ),
            "threads": GaugeMetricFamily(p + "_gil_threads", "Threads alive that took the GIL", labels=["thread_group"]),
        }
        hist = HistogramMetricFamily(p + "_gil_wait_duration_seconds", "Blocking waits for the GIL by duration", labels=["thread_group"])
        for g in m.groups:
            fams["wait"].add_metric([g.group], g.wait_s)
            fams["hold"].add_metric([g.group], g.hold_s)
            fams["acq"].add_metric([g.group], g.acquires)
            fams["waits"].add_metric([g.group], g.waits)
            fams["drops"].add_metric([g.group], g.drop_requests)
            fams["threads"].add_metric([g.group], g.threads)
            buckets, running = [], 0
            for i, n in enumerate(g.histogram):
                running += n
                le = "+Inf" if i >= len(BOUNDS_S) else repr(BOUNDS_S[i])
                buckets.append((le, running))
            # The sum of blocking waits is not kept apart from uncontended takes:
            # each bucket's midpoint would be a guess, so the sum is the total wait.
            hist.add_metric([g.group], buckets, sum_value=g.wait_s)
        yield from fams.values()
        yield hist
        contended = CounterMetricFamily(p + "_gil_contended_seconds", "Wall time during which some thread waited for the GIL")
        contended.add_metric([], m.contended_s)
        yield contended
        share = GaugeMetricFamily(p + "_gil_contention", "Share of wall time since the start during which some thread waited for the GIL")
        share.add_metric([], m.contention)
        yield share


def register(registry: Any = None) -> PrometheusCollector:
    """``giltrace.metrics.register(registry)``: a Prometheus collector of the
    running monitor (prometheus_client's default registry if none)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        raise GiltraceError("the Prometheus exporter needs prometheus_client: pip install 'giltrace[prometheus]'") from None
    collector = PrometheusCollector()
    (registry if registry is not None else REGISTRY).register(collector)
    return collector


def otel_register(meter: Any) -> None:
    """OpenTelemetry: observable counters on ``meter`` (opentelemetry-api),
    read from the running monitor at each collection."""
    try:
        from opentelemetry.metrics import CallbackOptions, Observation  # noqa: F401
    except ImportError:
        raise GiltraceError("the OpenTelemetry bridge needs opentelemetry-api: pip install 'giltrace[otel]'") from None

    def by_group(attr: str):
        def callback(options: Any) -> Iterator[Any]:
            mon = _active
            if mon is None:
                return
            for g in mon.read().groups:
                yield Observation(getattr(g, attr), {"thread_group": g.group})

        return callback

    meter.create_observable_counter("giltrace.gil.wait", [by_group("wait_s")], unit="s", description="Time threads spent taking the GIL")
    meter.create_observable_counter("giltrace.gil.hold", [by_group("hold_s")], unit="s", description="Time threads held the GIL")
    meter.create_observable_counter("giltrace.gil.waits", [by_group("waits")], description="Takes of the GIL that had to block")
    meter.create_observable_counter("giltrace.gil.drop_requests", [by_group("drop_requests")], description="Forced switches")

    def contention(options: Any) -> Iterator[Any]:
        mon = _active
        if mon is not None:
            yield Observation(mon.read().contention)

    meter.create_observable_gauge("giltrace.gil.contention", [contention], description="Share of wall time some thread waited for the GIL")


class JsonLinesLog:
    """Appends one JSON line per ``interval_s`` (the groups and the process
    totals) to ``path``, for people with neither Prometheus nor OpenTelemetry."""

    def __init__(self, path: str, interval_s: float = 10.0):
        self.path, self.interval_s = path, interval_s
        self._stop = False
        import threading

        self._thread = threading.Thread(target=self._run, name="giltrace-metrics-log", daemon=True)

    def start(self) -> "JsonLinesLog":
        import atexit

        self._thread.start()
        atexit.register(self._at_exit)  # the last line holds the totals at the program's end
        return self

    def _at_exit(self) -> None:
        if self._stop:
            return
        self._stop = True
        try:
            self.write_once()
        except (OSError, GiltraceError):
            pass

    def write_once(self) -> None:
        mon = _active
        if mon is None:
            return
        d = mon.read().to_dict()
        d.pop("threads")
        d["time_unix"] = time.time()
        d["pid"] = os.getpid()
        from .safefiles import open_new

        # opened for each line: no descriptor for the program to close or reuse, no link followed, no FIFO
        with open_new(self.path, append=True, binary=False) as f:
            f.write(json.dumps(d) + "\n")

    def _run(self) -> None:
        while not self._stop:
            time.sleep(self.interval_s)
            try:
                self.write_once()
            except (OSError, GiltraceError) as exc:  # say it once, then stop logging
                sys.stderr.write("giltrace: the metrics log stops: %s\n" % exc)
                self._stop = True
                return

    def stop(self) -> None:
        self._stop = True


DEFAULT_HOST = "127.0.0.1"  # the metrics name threads and the process: loopback unless a host is given


def parse_listen(value: str) -> Tuple[str, int]:
    """``:9464`` -> (127.0.0.1, 9464); ``0.0.0.0:9464``, ``[::]:9464``,
    ``[::1]:9464``, ``host:9464`` -> that host; ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = host[1:-1]  # an IPv6 address
    elif ":" in host or "[" in host or "]" in host:
        host = ""
        sep = ""  # an IPv6 address needs its brackets: [::]:9464
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected [HOST]:PORT, e.g. :9464, 0.0.0.0:9464 or [::]:9464, not %r" % value)
    return host or DEFAULT_HOST, int(port)


def parse_interval(value: str) -> float:
    """GILTRACE_METRICS_INTERVAL / --interval: seconds, finite, > 0; at least
    MIN_INTERVAL_S (a smaller one would keep a core busy writing lines)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise GiltraceError("the metrics log interval must be a number of seconds > 0, not %r" % value)
    return max(seconds, MIN_INTERVAL_S)


MIN_INTERVAL_S = 0.1


def start_from_environment() -> Optional[Monitor]:
    """``GILTRACE_METRICS=[HOST]:PORT`` (a Prometheus endpoint), with
    ``GILTRACE_METRICS_LOG=PATH`` (JSON lines every ``GILTRACE_METRICS_INTERVAL``
    seconds, default 10) and ``GILTRACE_METRICS_ALERT_MS``: called by the
    autostart .pth (giltrace/autostart.py).  Never raises."""
    listen = os.environ.get("GILTRACE_METRICS", "")
    log = os.environ.get("GILTRACE_METRICS_LOG", "")
    try:
        alert = os.environ.get("GILTRACE_METRICS_ALERT_MS")
        address = parse_listen(listen) if listen and listen != "-" else None  # checked before anything starts
        interval = parse_interval(os.environ.get("GILTRACE_METRICS_INTERVAL", "10")) if log else 0.0
        mon = Monitor(alert_ms=float(alert) if alert else None).start()
        if address:
            host, port = address
            register()
            from prometheus_client import start_http_server

            start_http_server(port, addr=host)
        if log:
            JsonLinesLog(log, interval).start()
        return mon
    except Exception as exc:  # a broken exporter must not break the service
        sys.stderr.write("giltrace: GILTRACE_METRICS=%s is set but the GIL metrics are off: %s\n" % (listen, exc))
        return None


def metrics() -> Metrics:
    """``giltrace.metrics()``: the running monitor's counters now (a Metrics).
    ``giltrace.metrics.register(registry)`` adds a Prometheus collector;
    ``giltrace.metrics.otel_register(meter)`` an OpenTelemetry bridge."""
    return snapshot()


metrics.register = register  # type: ignore[attr-defined]
metrics.otel_register = otel_register  # type: ignore[attr-defined]
