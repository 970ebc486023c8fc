"""Builds the Cython structure renderer; everything else lives in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "frgan.render._raster",
        ["frgan/render/_raster.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-ffp-contract=off"],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3))
