"""Builds the fmi extension with CMake (python/CMakeLists.txt) for the interpreter
running this script, then lets setuptools package it with its type stubs.

Environment: FMI_CMAKE_ARGS (extra CMake arguments, e.g. "-DFMI_WITH_S3=OFF"),
FMI_BUILD_JOBS (parallel build jobs, default 2).
"""

import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.join(os.path.abspath(self.build_temp), "cmake")
        args = [f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"]
        if shutil.which("ninja"):
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("FMI_CMAKE_ARGS", ""))
        subprocess.check_call(["cmake", "-S", HERE, "-B", build_dir] + args)
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "fmi_python",
                               "-j", os.environ.get("FMI_BUILD_JOBS", "2")])
        built = glob.glob(os.path.join(build_dir, "fmi*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one fmi*.so in {build_dir}, found {built}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)
        # The stubs sit next to the module, where type checkers look for them.
        shutil.copyfile(os.path.join(HERE, "fmi.pyi"), os.path.join(os.path.dirname(dest), "fmi.pyi"))


# setuptools' own metadata goes to build/ (ignored by git), not into the sources.
os.makedirs(os.path.join(HERE, "build"), exist_ok=True)
setup(
    ext_modules=[CMakeExtension("fmi")],
    cmdclass={"build_ext": CMakeBuild},
    packages=[],  # a single extension module; src/ holds C++ only
    options={"egg_info": {"egg_base": "build"}},
)
