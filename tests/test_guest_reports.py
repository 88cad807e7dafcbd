"""Transcripts reach every report pytest writes: the terminal, --junitxml (whatever
junit_logging says), and each pytest-rerunfailures attempt its own, labelled."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

FAILING = """
def test_wrong_reply(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+NOPE\\r\\n"


def test_unmet_at_teardown(hsock_server, hsock_client):
    hsock_server.expect(b"QUIT\\r\\n").respond(b"+BYE\\r\\n")
    hsock_client(hsock_server).write(b"HELLO")
"""


@pytest.mark.parametrize("logging", [None, "no", "system-out", "all"])
def test_junitxml_has_the_transcripts_of_failures_and_errors(
    pytester: pytest.Pytester, logging: str | None
) -> None:
    pytester.makepyfile(FAILING)
    options = ["--junitxml=out.xml", "-p", "no:cacheprovider"]
    if logging is not None:
        options += ["-o", f"junit_logging={logging}"]
    result = pytester.runpytest(*options)
    result.assert_outcomes(passed=1, failed=1, errors=1)  # the call of the second passed
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "out.xml").iter("testcase")
    }
    failure = cases["test_wrong_reply"].find("failure")
    assert failure is not None
    assert failure.text is not None
    assert "hsocket transcripts (call)" in failure.text
    assert "<< b'PING\\r\\n'" in failure.text  # the server's side
    assert ">> b'+PONG\\r\\n'" in failure.text
    error = cases["test_unmet_at_teardown"].find("error")
    assert error is not None
    assert error.text is not None
    assert "unmet expect(b'QUIT\\r\\n')" in error.text
    assert "hsocket transcripts (teardown)" in error.text
    assert "<< b'HELLO'" in error.text
    # Once, in the terminal too: not repeated as a section of its own.
    assert result.stdout.str().count("hsocket transcripts (call)") == 1


def test_each_rerun_shows_its_own_transcripts(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    pytester.makeconftest(
        """
        import json

        def pytest_runtest_logreport(report):
            if report.when == "call" and report.outcome in ("failed", "rerun"):
                with open("reports.jsonl", "a") as out:
                    out.write(json.dumps(report.longreprtext) + "\\n")
        """
    )
    pytester.makepyfile(
        """
        def test_flaky(hsock_server, hsock_client, request):
            attempt = request.node.execution_count
            hsock_server.expect(b"TRY %d\\r\\n" % attempt).respond(b"-NO\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"TRY %d\\r\\n" % attempt)
            assert client.expect(b"\\r\\n") == b"+YES\\r\\n"
        """
    )
    result = pytester.runpytest("--reruns", "2", "--junitxml=out.xml", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"failed": 1, "rerun": 2}
    text = result.stdout.str()
    # The final report: attempt 3's transcripts alone, labelled.
    final = text[text.index("= FAILURES =") :]
    assert final.count("hsocket transcripts") == 1
    assert "hsocket transcripts (call, attempt 3)" in final
    assert "TRY 3" in final
    assert "TRY 1" not in final
    assert "TRY 2" not in final
    # Each attempt's report has its own, and only its own.
    lines = (pytester.path / "reports.jsonl").read_text().splitlines()
    reports = [json.loads(line) for line in lines]
    assert len(reports) == 3
    for attempt, report in enumerate(reports, 1):
        assert report.count("hsocket transcripts") == 1
        assert f"hsocket transcripts (call, attempt {attempt})" in report
        assert {n for n in (1, 2, 3) if f"TRY {n}" in report} == {attempt}
    cases = list(ET.parse(pytester.path / "out.xml").iter("testcase"))
    failure = cases[-1].find("failure")
    assert failure is not None
    assert failure.text is not None
    assert "TRY 3" in failure.text
    assert "TRY 1" not in failure.text
