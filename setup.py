"""Build glue: the metadata is in pyproject.toml; this file only adds the cffi
extension, and only where it can work (CPython 3.9-3.13 with a GIL, Linux).
Elsewhere giltrace installs without it and explains why at trace start."""
import sys
import sysconfig

from setuptools import setup


def _can_build_native() -> bool:
    return (
        sys.platform.startswith("linux")
        and sys.implementation.name == "cpython"
        and (3, 9) <= sys.version_info[:2] <= (3, 13)
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
    )


setup(cffi_modules=["giltrace/_build_native.py:ffibuilder"] if _can_build_native() else [])
