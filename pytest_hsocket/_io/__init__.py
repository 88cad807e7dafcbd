"""The I/O layer on the loop: OS sockets, listeners, byte streams and datagrams.

The only code that calls ``recv``/``send``: each stream feeds the core's ``ReadQueue`` and asks
it what completed (httpcore's shape: need data, read, feed), with TLS through memory BIOs.
"""
