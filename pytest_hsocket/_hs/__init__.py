"""The hs.socket classes (TCP and Unix sockets, TLS start, UDP).

They check arguments, keep the original's state and log lines, and hand the work to the loop
and the I/O layer; ``info`` and ``where`` say where a socket is.
"""
