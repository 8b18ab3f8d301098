"""Packaging: the metadata people and tools read (SPDX license, classifiers, one version) and an sdist
whose own test suite can run (tests/conftest.py, golden files and the sample workspace inside it)."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_spdx_with_a_license_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    assert "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_classifiers_name_every_supported_python() -> None:
    classifiers = PYPROJECT["project"]["classifiers"]
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # superseded by the SPDX field


def test_version_is_written_once() -> None:
    import runbook

    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "runbook.__version__"}
    hits = [
        path
        for path in (REPO / "src").rglob("*.py")
        if runbook.__version__ in path.read_text(encoding="utf-8") and "__version__ =" in path.read_text(encoding="utf-8")
    ]
    assert hits == [REPO / "src" / "runbook" / "__init__.py"]


def test_linters_sit_in_the_dev_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {dep.split(">")[0].split("=")[0] for dep in extras["dev"]}
    assert {"ruff", "mypy"} <= names
    assert not any(dep.startswith(("ruff", "mypy")) for dep in extras["test"])
    assert "'.[test,dev]'" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_package_data_names_only_folders_that_exist() -> None:
    package = REPO / "src" / "runbook"
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["runbook"]:
        assert list(package.glob(pattern)), f"package-data pattern {pattern!r} matches nothing"


def test_sdist_carries_what_its_tests_need(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="`build` is in the dev extra: pip install '.[test,dev]'")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        top = next(iter(tar.getnames())).split("/", 1)[0]
        info = tar.extractfile(f"{top}/PKG-INFO")
        assert info is not None
        metadata = email.message_from_bytes(info.read())
    wanted = [
        "LICENSE",
        "tests/conftest.py",
        "tests/notebook_variants.py",
        "tests/golden/expected/phase-1.5-resolved.md",
        "tests/golden/workspace/runbook.yaml",
        "runbook.yaml",
        "runbook.schema.json",
        "mkdocs.yml",
        ".env.example",
        "runbooks/phase-1.5.yaml",
        "notebooks/master-ai-gateway-fix-MCP.ipynb",
        "templates/README.md",
        "docs/index.md",
        "src/runbook/templates/resolution.md",
        "src/runbook/azure/default_estate.yaml",
    ]
    missing = [name for name in wanted if name not in names]
    assert not missing, f"missing from the sdist: {missing}"
    assert not any("__pycache__" in name for name in names)
    assert metadata["License-Expression"] == "MIT"
    import runbook

    assert metadata["Version"] == runbook.__version__
    assert "Programming Language :: Python :: 3.13" in metadata.get_all("Classifier")
