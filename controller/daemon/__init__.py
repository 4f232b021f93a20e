"""The controller: a long-running reconcile loop over a watched folder of manifests.

    controller  the loop: what to reconcile when, attempts, failures, status, metrics
    events      what wakes it: inotify (watchdog), netlink, the DNS server's process
    folder      the watched folder: scan, choose the last good file contents
    schedule    when (pure): debounce, echo, resync, per-key backoff
    status      what `netctl status` shows (rows from each round)
    metrics     Prometheus text on --metrics-address
    command     the `controller` and `status` subcommands
"""

# Nothing imported here: `netctl apply` imports the `command` module for its parser, and must
# not pay for watchdog and the loop.
