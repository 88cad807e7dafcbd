"""Every code block of README.md and docs/*.md runs as written, with Sybil.

The blocks of one page run in order and share one namespace, as a reader pastes them one after
the other. A Python block that defines ``test_*`` functions is a pytest test file: it runs as one,
through ``pytester`` (fixtures, markers and teardown checks included), and must pass. Any other
Python block runs as a script. A ``json``/``toml``/``ini`` block must parse. A shell block cannot
run here; it must carry an explicit ``<!-- skip: next "why" -->`` before it, and so must any
Python block that cannot run as written. ``text`` blocks are output shown to the reader.
An ``<!-- invisible-code-block: python -->`` comment runs set-up the reader does not need to see;
its namespace has ``request`` and ``monkeypatch``.

A failure names the page and the line of the block: ``docs/udp.md, line 42: ...``.
"""

from __future__ import annotations

import ast
import configparser
import doctest
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from sybil import Document, Example
from sybil.parsers.markdown import CodeBlockParser, SkipParser

import pytest_hsocket as hsocket
from pytest_hsocket.testing import MockServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_EXAMPLES_CONFTEST = ROOT / "examples" / "conftest.py"
_REDIS_PORT = """

@pytest.fixture
def redis_port(redis_server_port):
    return redis_server_port
"""
SHELLS = ("bash", "sh", "shell", "console")


def _defines_tests(source: str) -> bool:
    tree = ast.parse(source)
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.name.lower().startswith("test")
        for node in tree.body
    )


_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<start>\w+)(?::(?P<end>\d+))?)?"$')


def _include(source: str) -> str:
    # What mkdocs shows for a pymdownx.snippets line: a whole file, a line range or a section.
    match = _SNIPPET.match(source.strip())
    if match is None:
        return source
    lines = (ROOT / match["path"]).read_text(encoding="utf-8").splitlines(keepends=True)
    start, end = match["start"], match["end"]
    if start is None:
        return "".join(lines)
    if end is not None:
        return "".join(lines[int(start) - 1 : int(end)])
    marks = [n for n, line in enumerate(lines) if f"--8<-- [start:{start}]" in line]
    stops = [n for n, line in enumerate(lines) if f"--8<-- [end:{start}]" in line]
    if len(marks) != 1 or len(stops) != 1:
        raise AssertionError(f"{match['path']} has no single section {start!r}")
    return "".join(lines[marks[0] + 1 : stops[0]])


def _report(lines: list[str]) -> list[str]:
    # The inner run's failures and errors, without its session header.
    for number, line in enumerate(lines):
        if "= FAILURES =" in line or "= ERRORS =" in line:
            return lines[number:]
    return lines[-40:]


def _example_place(example: Example) -> str:
    path = Path(example.path)
    shown = path.relative_to(ROOT) if ROOT in path.parents else path.name
    return f"{shown}, line {example.line}"


class PageRunner:
    """The evaluators of one page's blocks; see the module docstring."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.test_files: dict[str, str] = {}

    def python(self, example: Example) -> None:
        __tracebackhide__ = True
        source: str = _include(example.parsed)
        if source.lstrip().startswith(">>>"):
            self._run_as_doctest(example, source)
        elif _defines_tests(source):
            self._run_as_tests(example, source)
        else:
            self._run_as_script(example, source)

    @staticmethod
    def _run_as_script(example: Example, source: str) -> None:
        __tracebackhide__ = True
        # Padded so that a traceback shows the page's own line numbers. Unlike Sybil's own
        # PythonEvaluator, __builtins__ stays in the namespace: a callback the block defined
        # runs later, on the socket loop, and on Python 3.9 a function finds its builtins
        # through its globals at call time.
        padded = "\n" * (example.line + example.parsed.line_offset) + source
        exec(compile(padded, example.path, "exec", dont_inherit=True), example.namespace)

    @staticmethod
    def _run_as_doctest(example: Example, source: str) -> None:
        test = doctest.DocTestParser().get_doctest(
            source, example.namespace, _example_place(example), example.path, example.line
        )
        out: list[str] = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=out.append, clear_globs=False)
        if runner.failures:
            raise AssertionError(
                f"{_example_place(example)}: the session differs:\n" + "".join(out)
            )

    def _run_as_tests(self, example: Example, source: str) -> None:
        # Written now, run together by finish(): one pytest run per page, not one per block.
        # Padded so that pytest's report shows the page's own line numbers.
        padded = "\n" * (example.line + example.parsed.line_offset) + source
        page = Path(example.path).stem.replace("-", "_").lower()
        name = f"test_{page}_line{example.line}"
        self.pytester.makepyfile(**{name: padded})
        self.test_files[f"{name}.py"] = _example_place(example)

    def finish(self) -> None:
        """Run the page's test blocks; raise naming each failing block's page and line."""
        if not self.test_files:
            return
        # The example suite's fixtures (redis_server_port skips with a reason where there is no
        # redis-server), and the redis_port the docs' redis examples take.
        self.pytester.makeconftest(_EXAMPLES_CONFTEST.read_text(encoding="utf-8") + _REDIS_PORT)
        result = self.pytester.runpytest_inprocess(
            *self.test_files, "-p", "no:cacheprovider", "-W", "error::ResourceWarning", "-rfEs"
        )
        outcomes = result.parseoutcomes()
        ran = outcomes.get("passed", 0) + outcomes.get("skipped", 0)
        if result.ret == 0 and ran >= len(self.test_files):
            return
        output = "\n".join(result.outlines)
        failing = [where for name, where in self.test_files.items() if f"{name}::" in output]
        raise AssertionError(
            f"{'; '.join(failing) or 'a test block'}: the block's tests did not pass "
            f"({outcomes}):\n" + "\n".join(_report(result.outlines))
        )

    @staticmethod
    def data(check: Callable[[str], Any]) -> Callable[[Example], None]:
        def evaluate(example: Example) -> None:
            check(example.parsed)

        return evaluate

    @staticmethod
    def shell(example: Example) -> None:
        raise AssertionError(
            f"{_example_place(example)}: a shell block cannot run here; "
            'put <!-- skip: next "why" --> on the line before it'
        )


def _parse_json(text: str) -> None:
    # One document, or JSON Lines (a recording file).
    try:
        json.loads(text)
    except json.JSONDecodeError:
        for line in text.splitlines():
            if line.strip():
                json.loads(line)


def _parse_toml(text: str) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is new in Python 3.11")
    import tomllib

    tomllib.loads(text)


def _parse_ini(text: str) -> None:
    configparser.ConfigParser().read_string(text)


def _close_sockets(namespace: dict[str, Any]) -> None:
    # As a script's exit would: what the page's blocks left open is closed, so that a page which
    # shows a server without closing it does not leak a socket into the next test.
    for value in list(namespace.values()):
        if isinstance(value, (hsocket.Socket, hsocket.udp.UdpSocket, MockServer)):
            value.close()


def run_page(
    page: Path,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Run every block of ``page`` in order; return the skipped blocks' lines and reasons."""
    runner = PageRunner(pytester)
    parsers = [
        CodeBlockParser("python", runner.python),
        CodeBlockParser("json", runner.data(_parse_json)),
        CodeBlockParser("toml", runner.data(_parse_toml)),
        CodeBlockParser("ini", runner.data(_parse_ini)),
        *(CodeBlockParser(shell, runner.shell) for shell in SHELLS),
        SkipParser(),
    ]
    document = Document.parse(str(page), *parsers)
    document.namespace.update(request=request, monkeypatch=monkeypatch)
    skipped: list[str] = []
    try:
        for example in document.examples():
            try:
                example.evaluate()
            except Exception as exc:
                if type(exc).__name__ == "SkipTest" or isinstance(exc, pytest.skip.Exception):
                    skipped.append(f"line {example.line}: {exc}")
                    continue
                if isinstance(exc, AssertionError) and str(exc).startswith(_example_place(example)):
                    raise
                raise AssertionError(
                    f"{_example_place(example)}: {type(exc).__name__}: {exc}"
                ) from exc
        runner.finish()
    finally:
        _close_sockets(document.namespace)
    return skipped


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_block_of_the_page_runs(
    page: Path,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_page(page, pytester, request, monkeypatch)


BROKEN = {
    "script": ("```python\nimport pytest_hsocket as hsocket\nhsocket.nonsense()\n```\n", "line 3"),
    "test": (
        "```python\ndef test_it(hsock_server):\n    assert hsock_server.port == -1\n```\n",
        "line 3",
    ),
    "shell": ("```bash\nls\n```\n", "a shell block cannot run here"),
    "json": ('```json\n{"a": \n```\n', "line 3"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_block_fails_naming_its_page_and_line(
    kind: str,
    tmp_path: Path,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text, message = BROKEN[kind]
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n" + text, encoding="utf-8")
    with pytest.raises(AssertionError, match=r"page\.md") as failure:
        run_page(page, pytester, request, monkeypatch)
    assert message in str(failure.value)


def test_a_skip_marker_skips_the_next_block_with_its_reason(
    tmp_path: Path,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = tmp_path / "page.md"
    page.write_text('<!-- skip: next "an install line" -->\n```bash\npip install x\n```\n')
    assert run_page(page, pytester, request, monkeypatch) == ["line 2: an install line"]
