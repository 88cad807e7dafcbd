"""``smtplib`` upgrades a plain SMTP session to TLS with STARTTLS, then logs in and sends.

A submission server greets in plain text and offers ``STARTTLS`` in its EHLO reply. The client
says ``STARTTLS``, the server answers ``220`` and both sides negotiate TLS on the same
connection; the client then starts over with a second EHLO, inside TLS, where the server now
offers ``AUTH``. The password, the envelope and the message never cross the wire in clear.

The script acts this out on ``hsock_server``: its ``start_tls()`` step answers the handshake
with a certificate from ``hsock_ca``, the session's test CA, and the client trusts that CA
through an ``ssl.create_default_context()`` that ``hsock_ca.configure_trust`` extends. The
server's transcript marks the moment TLS came up with a ``secured`` entry, so a test can prove
that every command after it travelled encrypted.

The negative twin is a client that trusts another CA: the handshake must fail with
``ssl.SSLCertVerificationError`` and nothing more may reach the server. That test scripts a
``MockServer`` of its own, outside the fixtures, because the script it plays is *meant* to stay
unmet -- ``hsock_server`` would fail the test at teardown for it. The test checks the unmet
rules itself, with ``server.problems()``.

smtplib writes most verbs in lower case (``ehlo``, ``mail FROM:``, ``rcpt TO:``, ``data``) but
``STARTTLS``, ``AUTH`` and the ``QUIT`` that ends a ``with`` block in upper case; the script
spells them the same way. ``local_hostname`` fixes the name EHLO sends, so the script can
expect every line byte for byte.
"""

from __future__ import annotations

import base64
import smtplib
import ssl

import pytest
import trustme

from pytest_hsocket.testing import ExpectationError, MockServer, Transcript, until

CLIENT_NAME = "client.example"
SENDER = "alice@example.com"
RECIPIENT = "bob@example.com"
USER, PASSWORD = "alice", "s3cret"

MESSAGE = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: sealed\r\n\r\nFor your eyes only.\r\n"

PLAIN_EHLO_REPLY = b"250-mock.example at your service\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
TLS_EHLO_REPLY = b"250-mock.example at your service\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"

# What the client must send once TLS is up: EHLO again, AUTH, the envelope, the message, QUIT.
AUTH_PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
AFTER_STARTTLS = (
    f"ehlo {CLIENT_NAME}\r\n"
    f"AUTH PLAIN {AUTH_PLAIN}\r\n"
    f"mail FROM:<{SENDER}>\r\n"
    f"rcpt TO:<{RECIPIENT}>\r\n"
    "data\r\n"
    f"{MESSAGE}.\r\n"
    "QUIT\r\n"
).encode()


def script_plain_part(server: MockServer) -> None:
    """Greeting, EHLO offering STARTTLS, and the STARTTLS exchange that starts the handshake."""
    server.greet(b"220 mock.example ESMTP\r\n")
    server.expect(f"ehlo {CLIENT_NAME}\r\n").respond(PLAIN_EHLO_REPLY)
    server.expect(b"STARTTLS\r\n").respond(b"220 2.0.0 Ready to start TLS\r\n").start_tls()


def script_tls_part(server: MockServer) -> None:
    """Everything after the handshake: EHLO again, AUTH PLAIN, one message, QUIT."""
    server.expect(f"ehlo {CLIENT_NAME}\r\n").respond(TLS_EHLO_REPLY)
    server.expect(f"AUTH PLAIN {AUTH_PLAIN}\r\n").respond(b"235 2.7.0 Authenticated\r\n")
    server.expect(f"mail FROM:<{SENDER}>\r\n").respond(b"250 2.1.0 OK\r\n")
    server.expect(f"rcpt TO:<{RECIPIENT}>\r\n").respond(b"250 2.1.5 OK\r\n")
    server.expect(b"data\r\n").respond(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    server.expect(until(b"\r\n.\r\n")).respond(b"250 2.0.0 OK: queued as 7A1B\r\n")
    server.expect(b"QUIT\r\n").respond(b"221 2.0.0 Bye\r\n").close()


def received_after_tls(transcript: Transcript) -> tuple[bytes, bytes]:
    """Split what the server received into the bytes before and after the ``secured`` entry."""
    kinds = [entry.kind for entry in transcript.entries]
    assert kinds.count("secured") == 1, f"expected one TLS handshake, not {kinds}"
    secured = kinds.index("secured")
    before, after = transcript.entries[:secured], transcript.entries[secured + 1 :]
    return (
        b"".join(entry.data for entry in before if entry.kind == "in"),
        b"".join(entry.data for entry in after if entry.kind == "in"),
    )


def test_starttls_then_authenticated_delivery(
    hsock_server: MockServer, hsock_ca: trustme.CA
) -> None:
    script_plain_part(hsock_server)
    script_tls_part(hsock_server)
    context = ssl.create_default_context()  # verifies the chain and the name 127.0.0.1
    hsock_ca.configure_trust(context)

    with smtplib.SMTP(
        hsock_server.host, hsock_server.port, local_hostname=CLIENT_NAME, timeout=5
    ) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # no login offered over a plain connection

        code, _ = smtp.starttls(context=context)
        assert code == 220
        assert isinstance(smtp.sock, ssl.SSLSocket)
        tls_version = smtp.sock.version()

        smtp.ehlo()  # the capabilities from before TLS are void: ask again
        assert smtp.has_extn("auth")
        assert not smtp.has_extn("starttls")
        smtp.login(USER, PASSWORD)
        refused = smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert refused == {}
    transcript = hsock_server.transcripts[0]
    secured = [entry for entry in transcript.entries if entry.kind == "secured"]
    assert [entry.note for entry in secured] == [tls_version]  # e.g. "TLSv1.3"
    # In clear: only the EHLO and the STARTTLS. Everything else came through TLS.
    before, after = received_after_tls(transcript)
    assert before == f"ehlo {CLIENT_NAME}\r\nSTARTTLS\r\n".encode()
    assert after == AFTER_STARTTLS
    assert PASSWORD.encode() not in before


def test_sendmail_says_ehlo_again_by_itself(hsock_server: MockServer, hsock_ca: trustme.CA) -> None:
    # No explicit ehlo() after starttls(): sendmail notices the reset capabilities and greets
    # again inside TLS before MAIL FROM. (No AUTH this time.)
    script_plain_part(hsock_server)
    hsock_server.expect(f"ehlo {CLIENT_NAME}\r\n").respond(TLS_EHLO_REPLY)
    hsock_server.expect(f"mail FROM:<{SENDER}>\r\n").respond(b"250 OK\r\n")
    hsock_server.expect(f"rcpt TO:<{RECIPIENT}>\r\n").respond(b"250 OK\r\n")
    hsock_server.expect(b"data\r\n").respond(b"354 go ahead\r\n")
    hsock_server.expect(until(b"\r\n.\r\n")).respond(b"250 OK\r\n")
    hsock_server.expect(b"QUIT\r\n").respond(b"221 Bye\r\n").close()
    context = ssl.create_default_context()
    hsock_ca.configure_trust(context)

    with smtplib.SMTP(
        hsock_server.host, hsock_server.port, local_hostname=CLIENT_NAME, timeout=5
    ) as smtp:
        smtp.starttls(context=context)  # starttls() says the first EHLO by itself, too
        assert smtp.sendmail(SENDER, [RECIPIENT], MESSAGE) == {}

    before, after = received_after_tls(hsock_server.transcripts[0])
    assert before == f"ehlo {CLIENT_NAME}\r\nSTARTTLS\r\n".encode()
    assert after.startswith(f"ehlo {CLIENT_NAME}\r\nmail FROM:<{SENDER}>\r\n".encode())
    assert after.endswith(f"{MESSAGE}.\r\nQUIT\r\n".encode())


def test_a_client_trusting_another_ca_refuses_the_server(hsock_ca: trustme.CA) -> None:
    # The server's certificate comes from hsock_ca; the client trusts a stranger CA only.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    hsock_ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    trustme.CA().configure_trust(client_context)

    server = MockServer.start(wait_timeout=5)
    try:
        server.tls_context = server_context
        script_plain_part(server)
        script_tls_part(server)  # meant to stay unmet: the client must give up first

        with smtplib.SMTP(server.host, server.port, local_hostname=CLIENT_NAME, timeout=5) as smtp:
            with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
                smtp.starttls(context=client_context)
            assert not isinstance(smtp.sock, ssl.SSLSocket)  # never upgraded
    finally:
        server.close()  # process what arrived, then disconnect

    transcript = server.transcripts[0]
    assert "secured" not in [entry.kind for entry in transcript.entries]
    assert transcript.received() == f"ehlo {CLIENT_NAME}\r\nSTARTTLS\r\n".encode()
    closed = [entry.note for entry in transcript.entries if entry.kind == "closed"]
    assert closed == ["TLS negotiation failed: TLSV1_ALERT_UNKNOWN_CA"]  # the client's alert
    # The password and the message never left the client; the script says what was missed.
    problems = server.problems()
    assert (
        problems[0]
        == f"connection 1: unmet expect(b'ehlo {CLIENT_NAME}\\r\\n') matched 0 of 1 times"
    )
    assert len(problems) == 7  # every rule of the TLS part
    assert all(line.startswith("connection 1: unmet expect(") for line in problems)
    with pytest.raises(ExpectationError, match=r"hsock_server \(127\.0\.0\.1:\d+\): 7 problem"):
        server.check()
