"""A test's servers, clients, buffers and transcripts are released once its report is made:
memory stays flat over a long session (issue 16: 1,000 tests held 259-270 MiB to the end)."""

from __future__ import annotations

import pytest

# Every test moves 64 KiB each way through a mock server; the last report notes the peak RSS.
MANY = """
import pytest

SIZE = 64 * 1024


@pytest.mark.parametrize("n", range({count}))
def test_echo(hsock_server, hsock_client, n):
    hsock_server.expect(SIZE).respond(lambda data: data[::-1])
    client = hsock_client(hsock_server)
    payload = bytes([n % 251]) * (SIZE - 1) + b"!"
    client.write(payload)
    assert client.expect(SIZE) == payload[::-1]
"""

PEAK = """
import resource, sys

def pytest_unconfigure(config):
    # The peak of this process's own memory: VmHWM. (ru_maxrss also counts the memory of the
    # process that forked this one before it exec'd: the test runner, not what we measure.)
    try:
        with open("/proc/self/status") as status:
            peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))  # KiB
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            peak //= 1024
    with open("peak_rss_kib", "w") as out:
        out.write(str(peak))
"""


def _peak_mib(pytester: pytest.Pytester, count: int) -> float:
    pytester.makeconftest(PEAK)
    pytester.makepyfile(test_many=MANY.format(count=count))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=count)
    return int((pytester.path / "peak_rss_kib").read_text()) / 1024


def test_a_thousand_tests_moving_64_kib_stay_under_120_mib(pytester: pytest.Pytester) -> None:
    peak = _peak_mib(pytester, 1000)
    print(f"max RSS over 1,000 tests: {peak:.0f} MiB")
    assert peak <= 120


def test_a_passing_test_lets_go_of_its_objects_after_its_report(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import gc, weakref

        import pytest

        REFS = {}

        @pytest.fixture
        def keep(request):
            return REFS.setdefault(request.node.nodeid, [])

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logfinish(nodeid):
            gc.collect()
            alive = [ref() for ref in REFS.pop(nodeid, []) if ref() is not None]
            with open("alive.txt", "a") as out:
                out.write(f"{nodeid.split('::')[-1]} {len(alive)} {sorted(type(o).__name__ for o in alive)}\\n")
        """
    )
    pytester.makepyfile(
        """
        import weakref

        def test_server_and_client(hsock_server, hsock_client, keep):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
            keep += [weakref.ref(hsock_server), weakref.ref(client)]

        def test_udp(hsock_udp_server, hsock_udp_client, keep):
            hsock_udp_server.expect(b"ping").respond(b"pong")
            client = hsock_udp_client(hsock_udp_server)
            client.write(b"ping")
            assert client.expect() == b"pong"
            keep += [weakref.ref(hsock_udp_server), weakref.ref(client)]

        def test_tls_through_a_proxy(hsock_tls_server, hsock_proxy, hsock_client, keep):
            hsock_tls_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            proxy = hsock_proxy(hsock_tls_server)
            client = hsock_client(*proxy.address, tls=True, peer_name="127.0.0.1")
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
            keep += [weakref.ref(hsock_tls_server), weakref.ref(proxy), weakref.ref(client)]

        def test_failing(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"-NO\\r\\n"

        def test_after_a_failure(hsock_server, hsock_client, keep):
            client = hsock_client(hsock_server)
            keep += [weakref.ref(hsock_server), weakref.ref(client)]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    lines = (pytester.path / "alive.txt").read_text().splitlines()
    assert lines == [
        "test_server_and_client 0 []",
        "test_udp 0 []",
        "test_tls_through_a_proxy 0 []",
        "test_failing 0 []",  # (keeps no weak references)
        "test_after_a_failure 0 []",
    ]
    # (A failing test's objects live on in pytest's own record of the exception; its report
    # has the transcripts as text, made before the test let go of them.)
    result.stdout.fnmatch_lines(["*hsocket transcripts (call)*", "*>> b'+PONG\\r\\n'"])
