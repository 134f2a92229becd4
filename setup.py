"""Build of the optional C accelerator ``router_runtime._speedups``; everything else is in pyproject.toml.

Like MarkupSafe's speedups: built when a C compiler (and the Python headers) are present, skipped with a
warning otherwise (``optional=True``), and the runtime then uses its pure-Python code, which stays the
reference.  ``ZETA_NO_SPEEDUPS_BUILD=1`` skips the build on purpose.  The flags matter for exactness:
no fused multiply-add contraction, or scores would differ from the pure-Python path in the last bit.
"""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            flags = ["/O2", "/fp:precise"]
        else:
            flags = ["-O2", "-ffp-contract=off", "-fno-fast-math"]
        for ext in self.extensions:
            ext.extra_compile_args = flags + list(ext.extra_compile_args or [])
        super().build_extensions()


SOURCE = "router_runtime/_speedups.c"
# The module carries the sha256 of the source it was built from: router_runtime.compiled refuses a
# stale in-place build (an editable install whose C source changed since it was compiled).
SOURCE_SHA256 = hashlib.sha256((Path(__file__).resolve().parent / SOURCE).read_bytes()).hexdigest()

ext_modules = []
if not os.environ.get("ZETA_NO_SPEEDUPS_BUILD"):
    ext_modules.append(Extension("router_runtime._speedups", [SOURCE], optional=True,
                                 define_macros=[("ZETA_SOURCE_SHA256", f'"{SOURCE_SHA256}"')]))

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
