"""The test helpers, usable without pytest.

Mock servers (TCP and UDP, scripted by the core's rules), test clients with blocking and async
waits, the session's listener pool, and the TCP and UDP fault proxies.
"""
