"""What a release carries, checked from the checkout: one version, the licence, the metadata,
and a README whose links still work as the PyPI description."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import pytest_hsocket

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    tomllib = None


def _pyproject() -> dict[str, object]:
    if tomllib is None:
        pytest.skip("tomllib is new in Python 3.11")
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def test_the_version_is_written_once() -> None:
    project = _pyproject()
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert importlib.metadata.version("pytest-hsocket") == pytest_hsocket.__version__


def test_the_licence_is_mit_and_named_as_a_license_file() -> None:
    project = _pyproject()
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_a_classifier_for_each_python_the_package_supports() -> None:
    project = _pyproject()
    classifiers = project["classifiers"]
    assert isinstance(classifiers, list)
    assert project["requires-python"] == ">=3.9"
    versions = [c.rsplit(" ", 1)[1] for c in classifiers if re.match(r".*:: 3\.\d+$", c)]
    assert versions == ["3.9", "3.10", "3.11", "3.12", "3.13"]
    # Only the operating systems CI has actually run (docs/platforms.md).
    assert [c for c in classifiers if c.startswith("Operating System")] == [
        "Operating System :: POSIX :: Linux"
    ]


def test_the_readme_links_are_absolute_so_they_work_on_pypi() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert targets, "no links found: the pattern is wrong"
    relative = [t for t in targets if not re.match(r"https?://|#", t)]
    assert relative == []


def test_the_readme_starts_with_the_two_commands_then_the_release_install() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    assert blocks[0] == (
        "bash",
        "# run the example suite (real clients against real sockets)\n"
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" '
        "&& python -m pytest examples\n\n# run the tests\n"
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" '
        "&& python -m pytest\n",
    )
    assert blocks[1] == ("bash", "pip install pytest-hsocket\n")
