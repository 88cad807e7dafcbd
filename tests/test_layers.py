"""The package's folders are its layers, and imports point down only.

Each module's imports (read from its AST, nothing is run) are held against the table below, so
the picture that ``docs/architecture.md`` draws stays true. A module may import from its own
layer and the layers under it; the I/O-free core also imports nothing that does I/O or testing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_hsocket

PACKAGE = Path(pytest_hsocket.__file__).parent

# From the top down: a layer may import only from itself and the layers after it.
LAYERS = ["plugin", "faces", "_helpers", "_hs", "_io", "_loop", "_core"]
# A face is a public module at the top of the package.
FACES = {"__init__", "__main__", "udp", "testing"}
# What the I/O-free core must never import (the loop and the layers above are checked by LAYERS).
CORE_FORBIDDEN = {"gevent", "greenlet", "pytest", "ssl", "asyncio", "trustme", "selectors"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "pytest_hsocket", module
    if len(parts) == 1 or parts[1] in FACES:
        return "faces"
    assert parts[1] in LAYERS, f"{module} is in no layer: add its folder to LAYERS"
    return parts[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, me: str) -> list[tuple[int, str]]:
    """Every module ``path`` (the module ``me``) imports, absolute, with its line."""
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from . import udp`` imports a module, not a name
            found += [
                (node.lineno, f"{name}.{a.name}")
                for a in node.names
                if (PACKAGE.parent / f"{name}.{a.name}".replace(".", "/"))
                .with_suffix(".py")
                .exists()
            ]
    return found


_BY_NAME = ("sys.modules", "importlib.import_module", "import_module", "__import__")


def dynamic_imports(path: Path) -> list[tuple[int, str]]:
    """Modules ``path`` reaches by name at run time: ``sys.modules[...]``/``.get(...)``,
    ``importlib.import_module(...)`` and ``__import__(...)`` with a constant name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target: ast.expr | None = None
        if isinstance(node, ast.Subscript):
            owner, target = node.value, node.slice
        elif isinstance(node, ast.Call) and node.args:
            owner, target = node.func, node.args[0]
            if isinstance(owner, ast.Attribute) and owner.attr == "get":
                owner = owner.value
        else:
            continue
        if (
            isinstance(target, ast.Constant)
            and isinstance(target.value, str)
            and ast.unparse(owner) in _BY_NAME
        ):
            found.append((node.lineno, target.value))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def upward_imports(path: Path, me: str) -> list[str]:
    """The imports of ``path`` (the module ``me``) that point up the layer order."""
    mine = LAYERS.index(layer_of(me))
    upward = []
    for line, name in imports_of(path, me) + dynamic_imports(path):
        if name.split(".")[0] == "pytest_hsocket":
            if LAYERS.index(layer_of(name)) < mine:
                upward.append(f"line {line}: {name} ({layer_of(name)})")
        elif layer_of(me) == "_core" and name.split(".")[0] in CORE_FORBIDDEN:
            upward.append(f"line {line}: {name} (the core does no I/O and no testing)")
    return upward


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    me = module_name(path)
    upward = upward_imports(path, me)
    assert not upward, f"{me} ({layer_of(me)}) imports upward:\n" + "\n".join(upward)


def test_every_folder_is_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS) - {"faces"}


def test_the_check_finds_an_upward_import(tmp_path: Path) -> None:
    # The negative twin: a core module that imports a helper, gevent, or (relatively) the loop.
    fake = tmp_path / "fake.py"
    fake.write_text(
        "import gevent\n"
        "from pytest_hsocket._helpers.mockserver import MockServer\n"
        "from .._loop import hub\n"
        "from . import framing\n"
        'timeout = sys.modules.get("pytest_hsocket").timeout\n'
    )
    found = upward_imports(fake, "pytest_hsocket._core.fake")
    assert found == [
        "line 1: gevent (the core does no I/O and no testing)",
        "line 2: pytest_hsocket._helpers.mockserver (_helpers)",
        "line 3: pytest_hsocket._loop (_loop)",
        "line 3: pytest_hsocket._loop.hub (_loop)",
        "line 5: pytest_hsocket (faces)",
    ]
