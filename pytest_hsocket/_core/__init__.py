"""The I/O-free core: what every other layer decides with, and nothing that waits.

Reads and framing (``reads``, ``framing``, ``lines``, ``frames``, ``framers``), mock-server scripts
(``rules``, ``rule_specs``, ``script``, ``script_report``), transcripts and recordings, the
schedules of the fault proxies (``toxics``, ``pipe``, ``chaos``, ``lane``), fragmentation
patterns, argument checks, errors and the platform facts. No gevent, no pytest, no socket I/O:
each module is fed bytes and times and answers, so it is tested in microseconds with Hypothesis.
"""
