"""``giltrace attach`` / ``giltrace top --pid``: trace a CPython process that is
already running (docs/how-it-works.md, "Attaching").

    target.py     what the process is (/proc): exists, stopped, permitted, which CPython
                  (read from its ELF files with elf.py: nothing of the target's is run)
    inject.py     ways in: giltrace's ptrace injector (3.9-3.13, ptrace_inject.py; symbols.py
                  finds the addresses), gdb on request (gdb_inject.py), sys.remote_exec (3.14+)
    bootstrap.py  the source run in the target: a new thread that imports giltrace
    agent.py      that thread: start the trace, wait for ``stop`` on a UNIX socket, stop
    session.py    the CLI's side of one attach (a private directory the target can reach, also
                  in a container; the trace comes back as a file descriptor)

This package is imported inside the target too (``agent``), so this file
imports nothing.
"""
