"""pyproject.toml builds without a warning from the build backend."""

import shutil
import subprocess
import sys
import tomllib
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# The backend's own metadata step, with every warning an error: what pip runs on install.
BUILD_METADATA = (
    "import sys, setuptools.build_meta as backend; "
    "print(backend.prepare_metadata_for_build_wheel(sys.argv[1]))"
)


def test_the_installed_setuptools_is_one_the_build_system_accepts():
    [requirement] = [
        Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")
    ]
    assert requirement.specifier.contains(version("setuptools")), (
        "the next test would check another setuptools than builds use"
    )


def test_building_the_metadata_gives_no_warning_and_an_spdx_license(tmp_path):
    # Given a copy of what the metadata is made from (so no egg-info lands in the tree)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    out = tmp_path / "out"
    out.mkdir()

    # When setuptools builds the wheel metadata with warnings as errors
    built = subprocess.run(
        [sys.executable, "-W", "error", "-c", BUILD_METADATA, str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    # Then it succeeds silently, and the license is an SPDX expression
    assert built.returncode == 0, built.stderr
    assert "deprecated" not in built.stderr.lower()
    metadata = Parser().parsestr((out / built.stdout.splitlines()[-1] / "METADATA").read_text())
    assert metadata["License-Expression"] == "Apache-2.0"
