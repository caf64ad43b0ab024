"""Build glue: the metadata is in pyproject.toml; this file only adds the cffi
extension, and only where it can work (a CPython that giltrace/interpreters.py
marks traceable, with a GIL, on Linux).
Elsewhere giltrace installs without it and explains why at trace start."""

import os
import runpy
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_py import build_py

# GILTRACE=path traces any interpreter of the environment (giltrace/autostart.py).
PTH = "giltrace-autostart.pth"


OLDGIL = os.path.join("giltrace", "libgiltrace_oldgil.so")


class build_py_with_pth(build_py):
    """Also put giltrace-autostart.pth at the root of site-packages, and the
    2.7 recorder (a plain library: a wheel has no csrc/ to build it from
    later) into the package, where a C compiler is at hand."""

    def run(self):
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=0)
        if sys.platform.startswith("linux"):
            oldgil = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "giltrace", "_build_oldgil.py"))
            try:
                oldgil["compile_library"](os.path.join(self.build_lib, OLDGIL))
            except oldgil["BuildError"] as exc:
                self.warn("%s (giltrace run --python for 2.7 will not work)" % exc)

    def get_outputs(self, include_bytecode=1):
        extra = [os.path.join(self.build_lib, PTH)]
        if os.path.exists(os.path.join(self.build_lib, OLDGIL)):
            extra.append(os.path.join(self.build_lib, OLDGIL))
        return super().get_outputs(include_bytecode) + extra


try:  # editable installs (pip install -e): put the .pth in the editable wheel too
    from setuptools.command.editable_wheel import editable_wheel

    class editable_wheel_with_pth(editable_wheel):
        def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
            result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
            # files in unpacked_wheel land at the root of the wheel, i.e. in site-packages
            self.copy_file(PTH, os.path.join(unpacked_wheel, PTH), preserve_mode=0)
            return result

    EXTRA_COMMANDS = {"editable_wheel": editable_wheel_with_pth}
except ImportError:  # setuptools < 64 has no PEP 660 editable wheels
    EXTRA_COMMANDS = {}


# The table of traceable versions, read by path: importing the package here
# would need its dependencies in the build environment.
INTERPRETERS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "giltrace", "interpreters.py"))


def _can_build_native() -> bool:
    return (
        sys.platform.startswith("linux")
        and sys.implementation.name == "cpython"
        and INTERPRETERS["is_traceable"](sys.version_info[:2])
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
    )


setup(
    cffi_modules=["giltrace/_build_native.py:ffibuilder"] if _can_build_native() else [],
    cmdclass={"build_py": build_py_with_pth, **EXTRA_COMMANDS},
)
