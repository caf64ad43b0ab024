"""Addresses of functions in a running process, from the ELF files it has
mapped (``/proc/PID/maps``): no debugger, nothing of the target's executed.

A symbol's address is found through the mapping that holds its bytes: its
file offset (from its section) inside a mapping ``start-end offset path`` is
at ``start + (file offset - offset)``: the load bias, without program
headers.  Files are opened with ``target.open_mapped`` (the very file
mapped, even deleted or in another mount namespace).
"""

from __future__ import annotations

import os
import re
import struct
from typing import Dict, Iterable, Optional

from .elf import ElfError, open_elf
from .target import AttachError, mappings, open_mapped

AT_ENTRY = 9
_RUNTIME = re.compile(r"/(lib)?python\d[^/]*$")  # libpython3.11.so.1.0, or a static python3.11


def lookup(pid: int, names: Iterable[str], libraries: Optional[Iterable[str]] = None) -> Dict[str, int]:
    """Run-time addresses of ``names`` defined in the files mapped whose path
    matches one of ``libraries`` (regular expressions searched in the path;
    default: the Python runtime, libpython or a static python).  Missing names are absent."""
    maps = mappings(pid)
    patterns = [re.compile(p) for p in libraries] if libraries else [_RUNTIME]
    wanted = set(names)
    found: Dict[str, int] = {}
    seen = set()
    for m in maps:
        if m.path in seen or not any(p.search(m.path.replace(" (deleted)", "")) for p in patterns):
            continue
        seen.add(m.path)
        fd = open_mapped(pid, m)
        try:
            elf = open_elf(fd)
            for name, sym in elf.symbols(wanted - set(found)).items():
                if not 0 < sym.section < len(elf.sections):
                    continue
                sec = elf.sections[sym.section]
                file_offset = sym.value - sec.addr + sec.offset
                for other in maps:
                    if other.path == m.path and other.offset <= file_offset < other.offset + (other.end - other.start):
                        found[name] = other.start + file_offset - other.offset
                        break
        except ElfError:
            pass
        finally:
            os.close(fd)
        if wanted <= set(found):
            break
    return found


def entry_point(pid: int) -> int:
    """The program's entry point (``AT_ENTRY``), run once at start-up and never again."""
    try:
        with open("/proc/%d/auxv" % pid, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AttachError("cannot read /proc/%d/auxv: %s" % (pid, exc.strerror or exc)) from None
    for key, value in struct.iter_unpack("<QQ", data[: len(data) - len(data) % 16]):
        if key == AT_ENTRY:
            return int(value)
    raise AttachError("process %d has no entry point in its auxiliary vector" % pid)
