"""The socket loop: the gevent hub thread, the callback workers, cross-thread gates.

It knows no protocol and no socket class. ``hub`` starts the loop on first use and hands work
to it (``call``, ``run_sync``); ``callbacks`` runs user callbacks in order; ``sync`` and
``offload`` wait for the loop from plain and from async code; ``originals`` keeps the
standard library's own primitives for a gevent-monkey-patched process.
"""
