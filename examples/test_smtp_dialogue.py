"""``smtplib`` delivers a message to a scripted SMTP server.

SMTP is a server-speaks-first protocol: the client waits for the ``220`` greeting before it says
EHLO, so the script starts with ``greet``. Every later step is one command line and one reply;
the message itself travels after ``DATA`` and ends with a line holding a single dot
(``\\r\\n.\\r\\n``), so that step is matched with ``until``. The EHLO line carries the client's
host name (``socket.getfqdn()`` by default), different on every machine, so it is matched with
``until(b"\\r\\n")`` and checked afterwards in the transcript.

SMTP verbs are case-insensitive and smtplib writes them in lower case (``ehlo``,
``mail FROM:<...>``, ``rcpt TO:<...>``, ``data``, ``rset``) -- all but the ``QUIT`` that ends
a ``with smtplib.SMTP(...)`` block. A script matches the exact bytes, so it spells them the
same way.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from pytest_hsocket.testing import MockServer, until

SENDER = "alice@example.com"
RECIPIENT = "bob@example.com"
STRANGER = "mallory@example.net"

MESSAGE = (
    f"From: {SENDER}\r\n"
    f"To: {RECIPIENT}\r\n"
    "Subject: lunch\r\n"
    "\r\n"
    "Noon at the usual place?\r\n"
    ".a line that starts with a dot\r\n"
)

EHLO_REPLY = b"250-mock.example greets you\r\n250-8BITMIME\r\n250 HELP\r\n"


def script_session(server: MockServer, recipients: list[tuple[str, bytes]]) -> None:
    """Script greeting, EHLO, MAIL FROM, one RCPT TO per recipient, DATA and QUIT."""
    server.greet(b"220 mock ESMTP\r\n")
    server.expect(until(b"\r\n")).respond(EHLO_REPLY)  # ehlo <client host name>
    server.expect(f"mail FROM:<{SENDER}>\r\n").respond(b"250 2.1.0 OK\r\n")
    for address, reply in recipients:
        server.expect(f"rcpt TO:<{address}>\r\n").respond(reply)
    server.expect(b"data\r\n").respond(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    server.expect(until(b"\r\n.\r\n")).respond(b"250 2.0.0 OK: queued as 1F2E3D\r\n")
    server.expect(b"QUIT\r\n").respond(b"221 2.0.0 Bye\r\n").close()


def test_sendmail_delivers_the_message(hsock_server: MockServer) -> None:
    script_session(hsock_server, [(RECIPIENT, b"250 2.1.5 OK\r\n")])

    with smtplib.SMTP(hsock_server.host, hsock_server.port, timeout=5) as smtp:
        refused = smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)
        hostname = smtp.local_hostname

    assert refused == {}
    received = hsock_server.transcripts[0].received()
    ehlo, _, rest = received.partition(b"\r\n")
    assert ehlo == f"ehlo {hostname}".encode()
    assert (
        rest
        == (
            f"mail FROM:<{SENDER}>\r\n"
            f"rcpt TO:<{RECIPIENT}>\r\n"
            "data\r\n"
            f"From: {SENDER}\r\n"
            f"To: {RECIPIENT}\r\n"
            "Subject: lunch\r\n"
            "\r\n"
            "Noon at the usual place?\r\n"
            "..a line that starts with a dot\r\n"  # dot-stuffed by smtplib
            ".\r\n"
            "QUIT\r\n"
        ).encode()
    )


def test_a_refused_recipient_is_reported_not_raised(hsock_server: MockServer) -> None:
    script_session(
        hsock_server,
        [
            (RECIPIENT, b"250 2.1.5 OK\r\n"),
            (STRANGER, b"550 5.1.1 <mallory@example.net>: Recipient address rejected\r\n"),
        ],
    )

    with smtplib.SMTP(hsock_server.host, hsock_server.port, timeout=5) as smtp:
        refused = smtp.sendmail(SENDER, [RECIPIENT, STRANGER], MESSAGE)

    assert refused == {
        STRANGER: (550, b"5.1.1 <mallory@example.net>: Recipient address rejected"),
    }


def test_send_message_with_8bit_body(hsock_server: MockServer) -> None:
    # An 8bit body goes out as raw UTF-8 bytes; only the dot that ends it is added.
    hsock_server.greet(b"220 mock ESMTP\r\n")
    hsock_server.expect(until(b"\r\n")).respond(EHLO_REPLY)
    hsock_server.expect(f"mail FROM:<{SENDER}>\r\n").respond(b"250 OK\r\n")
    hsock_server.expect(f"rcpt TO:<{RECIPIENT}>\r\n").respond(b"250 OK\r\n")
    hsock_server.expect(b"data\r\n").respond(b"354 go ahead\r\n")
    hsock_server.expect(until(b"\r\n.\r\n")).respond(b"250 OK\r\n")
    hsock_server.expect(b"QUIT\r\n").respond(b"221 Bye\r\n").close()

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, RECIPIENT, "Grüße"
    message.set_content("Schöne Grüße aus Zürich\n", cte="8bit")

    with smtplib.SMTP(hsock_server.host, hsock_server.port, timeout=5) as smtp:
        assert smtp.send_message(message) == {}

    received = hsock_server.transcripts[0].received()
    assert "Schöne Grüße aus Zürich\r\n.\r\n".encode() in received
    assert b"Content-Transfer-Encoding: 8bit\r\n" in received


def test_a_rejected_sender_raises(hsock_server: MockServer) -> None:
    hsock_server.greet(b"220 mock ESMTP\r\n")
    hsock_server.expect(until(b"\r\n")).respond(EHLO_REPLY)
    hsock_server.expect(f"mail FROM:<{SENDER}>\r\n").respond(b"553 5.7.1 Sender not allowed\r\n")
    # smtplib says rset after a refused MAIL FROM, then QUIT when the with block ends.
    hsock_server.expect(b"rset\r\n").respond(b"250 OK\r\n")
    hsock_server.expect(b"QUIT\r\n").respond(b"221 Bye\r\n").close()

    with smtplib.SMTP(hsock_server.host, hsock_server.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert refused.value.smtp_code == 553
    assert refused.value.sender == SENDER
