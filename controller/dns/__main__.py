"""`python -m controller.dns --state-dir DIR serve`: the server process the pipeline starts.

The same as `netctl dns serve`, without importing the CLI (YAML, JSON Schema): it starts
faster, which is what an apply waiting for its first DNS server needs.
"""

from __future__ import annotations

import argparse
import os
import sys

from controller.dns.supervisor import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.dns")
    parser.add_argument("--state-dir", default=os.environ.get("NETCTL_STATE_DIR", "/var/lib/netctl"))
    parser.add_argument("command", choices=["serve"])
    args = parser.parse_args()
    return serve(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
