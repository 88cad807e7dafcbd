"""``python -m pytest_hsocket serve RECORDING``: serve a recorded conversation on a port.

The server plays back the server side of the recording (``hsock_proxy``'s ``save`` or
``MockServer.save`` wrote it) and expects the client's side, printing the live transcript, so
a client can be debugged by hand against a conversation recorded once against the real thing.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Optional

from pytest_hsocket._core.transcript import Entry, Transcript, render_entry
from pytest_hsocket.testing import ExpectationError, MockServer


def _print_entry(transcript: Transcript, entry: Entry) -> None:
    for line in render_entry(entry):
        print(f"[{transcript.name}] {line.strip()}", flush=True)


def serve(path: str, host: str, port: int, connections: Optional[int]) -> int:
    """Serve ``path`` until interrupted (or after ``connections`` connections closed).

    Returns:
        0 if every connection followed the recording, 1 otherwise.
    """
    closed = threading.Semaphore(0)

    def listen(transcript: Transcript, entry: Entry) -> None:
        _print_entry(transcript, entry)
        if entry.kind == "closed":
            closed.release()

    server = MockServer(name="replay")
    server.transcript_listener = listen
    server.replay(path)
    if server.listen(port, host=host) is None:
        print(f"cannot listen on {host}:{port}", file=sys.stderr)
        return 2
    server.remember_address()
    print(f"serving {path} on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        for _ in range(connections) if connections else iter(int, 1):
            closed.acquire()
    except KeyboardInterrupt:
        pass
    server.close()
    try:
        server.check(transcripts=False)
    except ExpectationError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("every connection followed the recording", flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pytest_hsocket", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("serve", help="serve a recorded conversation")
    play.add_argument("recording", help="a JSON-lines recording")
    play.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    play.add_argument("--port", type=int, default=0, help="port (0: the OS picks, printed)")
    play.add_argument(
        "--connections", type=int, default=None, help="stop after this many connections closed"
    )
    args = parser.parse_args(argv)
    try:
        return serve(args.recording, args.host, args.port, args.connections)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
