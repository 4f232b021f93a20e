"""Embedded DNS: 127.0.0.11 inside every container on a user-defined network.

    records.py     Target -> who sees which names (pure; unit-tested without sockets)
    answer.py      query bytes -> reply bytes for local names, with a response cache (dnspython)
    upstream.py    forwarding from the host's namespace: UDP, TCP fallback, bounded timeouts
    server.py      the worker: one asyncio loop, a socket pair in each container's namespace
    supervisor.py  `netctl dns serve`: holds the lock and the sockets, restarts the worker
    control.py     the pipeline's side: publish records, start the server, wait for the reload
"""
