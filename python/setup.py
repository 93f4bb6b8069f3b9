"""Builds the efcnet package with the project's CMake build (pyproject.toml says how pip calls it).

The extension modules are the CMake targets efcnet_python and efcnet_python_cpu, built in the
project's build directory ($EFCNET_BUILD_DIR, default build/ beside this directory; configured
Release without tests when it is new, as `make build` does) and installed, with the pure-Python
files, the stubs and the shipped models, by CMake's `python` install component into a staging
directory, from which they go into the wheel. Nothing is downloaded.
"""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(efcnet VERSION ([0-9.]+)", text).group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = pathlib.Path(os.environ.get("EFCNET_BUILD_DIR", ROOT / "build")).resolve()
        jobs = str(os.cpu_count() or 1)
        if not (build / "CMakeCache.txt").exists():
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                            "-DEFCNET_TESTS=OFF"], check=True)
        subprocess.run(["cmake", "--build", str(build), "-j", jobs, "--target", "efcnet_python",
                        "efcnet_python_cpu"], check=True)
        with tempfile.TemporaryDirectory() as stage:
            subprocess.run(["cmake", "--install", str(build), "--component", "python"], check=True,
                           env={**os.environ, "DESTDIR": stage})
            (package,) = {p.parent for p in pathlib.Path(stage).rglob("efcnet/__init__.py")}
            target = pathlib.Path(self.build_lib) / "efcnet"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(package, target)


setup(
    version=project_version(),
    # The package is CMake's install of it (above), not files found here.
    packages=[],
    py_modules=[],
    # One placeholder extension: the wheel is platform-specific, and build_ext runs CMake.
    ext_modules=[Extension("efcnet._efcnet", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
