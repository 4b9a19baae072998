"""Packaging beside pyproject.toml: the fst packages, plus the shipped models.

The models stay at the top of the checkout (export/*.onnx, checkpoints/*.pth and the paintings in
checkpoints/styles/); a wheel carries the ONNX models and the paintings as the data-only packages
fst/shipped/export and fst/shipped/checkpoints, where fst.styles looks first (then the checkout).
The .pth files stay in the repository: only torch reads them, and the light install's venv has a
250 MB budget.
"""

from setuptools import find_packages, setup

SHIPPED = {"fst.shipped.export": "export", "fst.shipped.checkpoints": "checkpoints"}

setup(
    packages=find_packages(include=["fst", "fst.*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    include_package_data=False,
    package_data={
        "fst": ["static/*"],
        "fst.bench": ["cpuid_mask.c"],  # fst bench --isa builds it
        "fst.shipped.export": ["*.onnx"],
        "fst.shipped.checkpoints": ["styles/*.jpg", "styles/CREDITS.md"],
    },
)
