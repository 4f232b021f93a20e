"""The controller's API: HTTP on a unix socket (server.py), Docker's network endpoints (docker.py)."""
