"""The Python source that an injector runs inside the target.

Two layers, so that the target is stopped for as little as possible:

* ``bootstrap_code(params)`` is what the injector makes the target run at a
  safe point (gdb: ``PyRun_SimpleStringFlags`` in a thread that holds the
  GIL; 3.14+: ``sys.remote_exec``).  It only starts a new thread and returns;
  it binds no name in ``__main__`` and catches everything.
* ``LOADER`` runs in that new thread: it connects to the CLI's control
  socket, names the thread ``giltrace-attach`` (``/proc/self/task/TID/comm``),
  imports the CLI's own giltrace by file location (``sys.path`` is not
  changed; in another mount namespace, a copy the CLI put in the target's
  view, docs/how-it-works.md "Attaching: safety") and hands over to :func:`giltrace.attach.agent.serve`.  Any
  failure goes back over the socket as one ``error`` line.
"""

from __future__ import annotations

# Runs with the target's own interpreter; it may only use what every CPython
# 3.9+ has built in.  ``P`` is the JSON parameters (see session.py).
LOADER = r'''
def _giltrace_attach(P):
    import sys, _thread, _socket, _json
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(10.0)
        s.connect(P["socket"])
        s.settimeout(None)
    except OSError:
        s.close()
        return
    def fail(kind, message):
        try:
            s.sendall(("error {\"kind\": %s, \"message\": %s}\n" % (_json.encode_basestring_ascii(kind), _json.encode_basestring_ascii(message))).encode())
        finally:
            s.close()
    for comm in ("/proc/thread-self/comm", "/proc/self/task/%d/comm" % _thread.get_native_id()):
        try:  # thread-self: right even where /proc is another PID namespace's
            with open(comm, "w") as f:
                f.write("giltrace-attach")
            break
        except OSError:
            pass
    if sys.is_finalizing():
        return fail("exiting", "the process is exiting")
    try:
        import os
        mod = sys.modules.get("giltrace")
        if mod is not None:
            where = os.path.dirname(os.path.abspath(getattr(mod, "__file__", "") or ""))
            if where != P["package"] and getattr(mod, "_giltrace_attach_id", None) != P["package_id"]:
                return fail("other-giltrace", "the process has another giltrace imported (%s)" % where)
        else:
            import importlib.util
            if "_cffi_backend" not in sys.modules and P.get("cffi_backend"):
                spec = importlib.util.spec_from_file_location("_cffi_backend", P["cffi_backend"])
                backend = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(backend)
                sys.modules["_cffi_backend"] = backend
            spec = importlib.util.spec_from_file_location("giltrace", os.path.join(P["package"], "__init__.py"),
                                                          submodule_search_locations=[P["package"]])
            mod = importlib.util.module_from_spec(spec)
            sys.modules["giltrace"] = mod
            try:
                spec.loader.exec_module(mod)
                mod._giltrace_attach_id = P["package_id"]  # a copy made for a container: the next attach's copy is the same
            except BaseException:
                for name in [n for n in sys.modules if n == "giltrace" or n.startswith("giltrace.")]:
                    del sys.modules[name]
                raise
        from giltrace.attach import agent
    except BaseException as exc:
        return fail("import", "cannot import giltrace in the process: %s: %s" % (type(exc).__name__, exc))
    agent.serve(s, P)
_giltrace_attach(P)
'''


def loader_source(params: "dict[str, object]") -> str:
    """The loader with its parameters bound (str, int, float, bool, None: their repr is a literal)."""
    return "P = %r\n%s" % (params, LOADER)


def bootstrap_code(params: "dict[str, object]") -> str:
    """One statement for the safe point: start the loader in a new thread."""
    # A Ctrl-C whose handler happened to run inside these few bytecodes is
    # handed back to the main thread, where the program would have seen it.
    return (
        "try:\n    __import__('_thread').start_new_thread(exec, (%r, {'__name__': '__giltrace_attach__'}))\n"
        "except KeyboardInterrupt:\n    __import__('_thread').interrupt_main()\n"
        "except BaseException:\n    pass\n" % loader_source(params)
    )
