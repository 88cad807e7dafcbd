"""Classes are whole: none is a slice that declares what another class sets, or a stub that
another class fills in (issue 20). Each module's AST is read; nothing is run but the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_hsocket
from pytest_hsocket._helpers.client_reads import ClientReads
from pytest_hsocket._helpers.mockserver import MockServer
from pytest_hsocket._helpers.testclient import TestClient
from pytest_hsocket._hs.base import SocketCore
from pytest_hsocket._hs.tcp import Socket
from pytest_hsocket._io.stream import Stream

PACKAGE = Path(pytest_hsocket.__file__).parent

# Classes whose bare annotations are their whole point (they declare, something else builds).
DECLARING_BASES = ("Protocol", "NamedTuple", "TypedDict")

# Still slices, being made whole: shrink only (empty since issue 20 landed).
NOT_YET: set[tuple[str, str]] = set()


def _declaring(node: ast.ClassDef) -> bool:
    bases = [ast.unparse(base) for base in node.bases]
    decorators = [ast.unparse(d) for d in node.decorator_list]
    return any(b.rpartition(".")[2] in DECLARING_BASES for b in bases) or any(
        "dataclass" in d for d in decorators
    )


def _slots(node: ast.ClassDef) -> set[str]:
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in statement.targets
        ):
            value = statement.value
            if isinstance(value, (ast.Tuple, ast.List)):
                return {e.value for e in value.elts if isinstance(e, ast.Constant)}
    return set()


def _assigned_by_itself(node: ast.ClassDef) -> set[str]:
    # self.x = / obj.x = / cls.x = inside the class's own methods (obj: what __new__ builds).
    names = set()
    for sub in ast.walk(node):
        targets: list[ast.expr] = []
        if isinstance(sub, ast.Assign):
            targets = list(sub.targets)
        elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
            targets = [sub.target]
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
                    names.add(t.attr)
    return names


def _abstract(fn: ast.AST) -> bool:
    return isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
        ast.unparse(d).rpartition(".")[2] == "abstractmethod" for d in fn.decorator_list
    )


def slices(tree: ast.AST) -> dict[str, list[str]]:
    """Each class that declares attributes it never sets, or raises NotImplementedError outside
    an abstract method: ``{class name: [what]}``."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        problems = []
        if not _declaring(node):
            own = _assigned_by_itself(node) | _slots(node)
            problems += [
                f"declares {s.target.id}"
                for s in node.body
                if isinstance(s, ast.AnnAssign)
                and s.value is None
                and isinstance(s.target, ast.Name)
                and s.target.id not in own
            ]
        for fn in node.body:
            if _abstract(fn):
                continue
            problems += [
                f"stub {getattr(fn, 'name', '?')}"
                for sub in ast.walk(fn)
                if isinstance(sub, ast.Raise)
                and sub.exc is not None
                and "NotImplementedError" in ast.unparse(sub.exc)
            ]
        if problems:
            found[node.name] = problems
    return found


def scan() -> dict[tuple[str, str], list[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for name, problems in slices(ast.parse(path.read_text(encoding="utf-8"))).items():
            found[(module, name)] = problems
    return found


def test_no_class_is_a_slice_of_another() -> None:
    new = {key: problems for key, problems in scan().items() if key not in NOT_YET}
    assert not new, f"make the class whole (compose its parts): {new}"


def test_the_list_holds_only_what_still_occurs() -> None:
    gone = sorted(NOT_YET - set(scan()))
    assert not gone, f"no longer a slice, take off the list: {gone}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n    x: int\n", {"A": ["declares x"]}),
        ("class A:\n    x: int\n    def __init__(self):\n        self.x = 1\n", {}),
        ("class A:\n    __slots__ = ('x',)\n    x: int\n", {}),
        ("class P(Protocol):\n    x: int\n", {}),
        ("class A:\n    def f(self):\n        raise NotImplementedError\n", {"A": ["stub f"]}),
        (
            "class A:\n    @abstractmethod\n    def f(self):\n        raise NotImplementedError\n",
            {},
        ),
    ],
)
def test_the_check_finds_slices(source: str, expected: dict[str, list[str]]) -> None:
    assert slices(ast.parse(source)) == expected


def test_the_tcp_socket_and_the_test_client_are_whole_classes() -> None:
    # Each level is a class with its own state, not a slice: the socket's state and reports,
    # its operations; the test client's reads (tickets, inbox), its connecting and closing.
    assert Socket.__mro__ == (Socket, SocketCore, object)
    assert TestClient.__mro__ == (TestClient, ClientReads, Socket, SocketCore, object)


def test_a_mock_server_has_a_socket_and_a_stream_has_its_parts() -> None:
    # A mock server is not a client socket (no connect()); a stream is one class of its own.
    assert not issubclass(MockServer, Socket)
    assert not hasattr(MockServer, "connect")
    assert Stream.__mro__ == (Stream, object)
