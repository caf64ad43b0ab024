"""Read an ELF file's symbols without running or loading it.

The file is the target's (its executable or libpython, opened through
``/proc/PID/...``): its owner may have made it anything, so every offset and
size is checked against the file, and a malformed file is an ``ElfError``
(one line), never an exception from deep inside.  Reads with ``os.pread`` on
a file descriptor the caller opened (docs/how-it-works.md, "Attaching: safety").
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

EM_NAMES = {3: "x86 (32-bit)", 40: "arm (32-bit)", 62: "x86-64", 183: "aarch64", 243: "riscv64", 21: "ppc64", 22: "s390x"}
_MAX_TABLE = 32 << 20  # a symbol or string table larger than this is not a real interpreter's (libpython's: 1-2 MB)


class ElfError(Exception):
    """Not a readable ELF file (the message says what is wrong)."""


@dataclass
class Symbol:
    value: int  # its address in the file's own address space (st_value)
    size: int
    section: int  # st_shndx


@dataclass
class Section:
    addr: int
    offset: int
    size: int
    kind: int
    link: int  # the section holding a symbol table's names


@dataclass
class Elf:
    fd: int
    size: int
    is64: bool
    little: bool
    machine: int
    sections: List[Section]

    @property
    def machine_name(self) -> str:
        return EM_NAMES.get(self.machine, "machine %d" % self.machine)

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ElfError("reference outside the file (offset %d, %d bytes)" % (offset, n))
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise ElfError("short read at offset %d" % offset)
        return data

    def symbols(self, names: Iterable[str]) -> Dict[str, Symbol]:
        """The defined symbols among ``names``, from .dynsym and (if kept) .symtab."""
        wanted = {n.encode() for n in names}
        found: Dict[str, Symbol] = {}
        end = "<" if self.little else ">"
        fmt, entsize = (end + "IBBHQQ", 24) if self.is64 else (end + "IIIBBH", 16)
        for kind in (11, 2):  # SHT_DYNSYM, then SHT_SYMTAB
            for sec in self.sections:
                if sec.kind != kind or sec.size > _MAX_TABLE:
                    continue
                link = self._link(sec)
                if link is None or link.size > _MAX_TABLE:
                    continue
                table, strings = self.read(sec.offset, sec.size - sec.size % entsize), self.read(link.offset, link.size)
                for pos in range(0, len(table), entsize):
                    if self.is64:
                        name, _, _, shndx, value, size = struct.unpack_from(fmt, table, pos)
                    else:
                        name, value, size, _, _, shndx = struct.unpack_from(fmt, table, pos)
                    if shndx == 0 or name >= len(strings):  # undefined (imported) or a bad name offset
                        continue
                    stop = strings.find(b"\0", name)
                    text = strings[name : stop if stop >= 0 else len(strings)]
                    if text in wanted and text.decode() not in found:
                        found[text.decode()] = Symbol(value, size, shndx)
        return found

    def read_symbol(self, sym: Symbol, n: int) -> bytes:
        """``n`` bytes of a symbol's initial value (its section's contents in the file)."""
        if not 0 < sym.section < len(self.sections):
            raise ElfError("symbol in no section of the file")
        sec = self.sections[sym.section]
        if sec.kind == 8:  # SHT_NOBITS (.bss): no value in the file
            raise ElfError("symbol has no value in the file")
        if not (sec.addr <= sym.value and sym.value + n <= sec.addr + sec.size):
            raise ElfError("symbol outside its section")
        return self.read(sec.offset + sym.value - sec.addr, n)

    def integer(self, sym: Symbol, n: int) -> int:
        return int.from_bytes(self.read_symbol(sym, n), "little" if self.little else "big")

    def _link(self, sec: Section) -> Optional[Section]:
        return self.sections[sec.link] if 0 < sec.link < len(self.sections) else None


def open_elf(fd: int) -> Elf:
    """Parse the ELF header and section table of the file open at ``fd`` (not closed here)."""
    size = os.fstat(fd).st_size
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    is64, little = ident[4] == 2, ident[5] == 1
    if ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise ElfError("unknown ELF class or byte order")
    end = "<" if little else ">"
    machine = struct.unpack_from(end + "H", ident, 18)[0]
    if is64:
        shoff, shentsize, shnum = struct.unpack_from(end + "Q", ident, 40)[0], *struct.unpack_from(end + "HH", ident, 58)
        hdr, hsize = end + "IIQQQQIIQQ", 64
    else:
        shoff, shentsize, shnum = struct.unpack_from(end + "I", ident, 32)[0], *struct.unpack_from(end + "HH", ident, 46)
        hdr, hsize = end + "IIIIIIIIII", 40
    elf = Elf(fd, size, is64, little, machine, [])
    if shnum == 0:
        return elf  # no section table: no symbols to read
    if not hsize <= shentsize <= 256:  # the target's file: a huge entry size would make us read gigabytes
        raise ElfError("implausible section header size %d" % shentsize)
    table = elf.read(shoff, shentsize * shnum)
    for i in range(shnum):
        f = struct.unpack_from(hdr, table, i * shentsize)
        # 64-bit: name type flags addr offset size link info align entsize; 32-bit: name type flags addr offset size link ...
        elf.sections.append(Section(addr=f[3], offset=f[4], size=f[5], kind=f[1], link=f[6]))
    return elf


def machine_of(fd: int) -> Tuple[int, str]:
    """(e_machine, its name) of an ELF file; ElfError if it is not one."""
    elf = open_elf(fd)
    return elf.machine, elf.machine_name
