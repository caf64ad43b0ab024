"""giltrace/attach/elf.py reads files the target's owner chose: a malformed
one is an ElfError, never another exception and never a huge read
(docs/how-it-works.md, "Attaching: safety")."""

import os
import random
import struct
import sys

import pytest

from giltrace.attach import elf


def _open(path):
    return os.open(str(path), os.O_RDONLY)


def _real_runtime() -> str:
    """This interpreter's runtime: libpython if it has one, else the executable."""
    with open("/proc/self/maps") as f:
        for line in f:
            if "/libpython3" in line:
                return line.split()[-1]
    return os.path.realpath(sys.executable)


def test_py_version_of_this_interpreter():
    fd = _open(_real_runtime())
    try:
        image = elf.open_elf(fd)
        found = image.symbols(["Py_Version", "PyFrame_GetCode"])
        assert "PyFrame_GetCode" in found
        if sys.version_info >= (3, 11):
            sym = found["Py_Version"]
            assert image.integer(sym, sym.size if sym.size in (4, 8) else 4) == sys.hexversion
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def runtime_copy(tmp_path_factory):
    path = tmp_path_factory.mktemp("elf") / "runtime"
    with open(_real_runtime(), "rb") as f:
        path.write_bytes(f.read())
    return path


@pytest.mark.parametrize("seed", range(40))
def test_mutated_headers_are_elf_errors(runtime_copy, seed):
    """A copy of the real file with bytes of its ELF header and section table changed at random."""
    fd = os.open(str(runtime_copy), os.O_RDWR)
    rng = random.Random(seed)
    shoff = struct.unpack("<Q", os.pread(fd, 8, 40))[0]
    places = list(range(16, 64)) + list(range(shoff, min(os.fstat(fd).st_size, shoff + 64 * 40)))
    saved = {}
    try:
        for _ in range(rng.randint(1, 8)):
            at = rng.choice(places)
            saved.setdefault(at, os.pread(fd, 1, at))
            os.pwrite(fd, bytes([rng.randrange(256)]), at)
        try:
            image = elf.open_elf(fd)
            found = image.symbols(["Py_Version", "PyFrame_GetCode"])
            if "Py_Version" in found:
                image.integer(found["Py_Version"], 4)
        except elf.ElfError:
            pass
    finally:
        for at, byte in saved.items():
            os.pwrite(fd, byte, at)
        os.close(fd)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x7fELF", b"#!/bin/sh\n", b"\x7fELF\x02\x01\x01" + b"\0" * 57, b"\x7fELF\x03\x01" + b"\0" * 58],
    ids=["empty", "magic-only", "script", "no-sections", "bad-class"],
)
def test_not_elf_or_empty(tmp_path, blob):
    path = tmp_path / "f"
    path.write_bytes(blob)
    fd = _open(path)
    try:
        try:
            assert elf.open_elf(fd).symbols(["Py_Version"]) == {}
        except elf.ElfError:
            pass
    finally:
        os.close(fd)


def test_a_huge_section_table_is_refused_unread(tmp_path):
    """A section entry size of 65535 with 65535 entries would be a 4 GiB read of a sparse file."""
    header = bytearray(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    struct.pack_into("<HH", header, 16, 3, 62)
    struct.pack_into("<Q", header, 40, 64)
    struct.pack_into("<HH", header, 58, 65535, 65535)
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(5 << 30)
    fd = _open(path)
    try:
        with pytest.raises(elf.ElfError, match="implausible section header size"):
            elf.open_elf(fd)
    finally:
        os.close(fd)
