"""The firewall behind one boundary: render (pure) -> diff (the planner) -> apply.

`render` turns the target into chain, jump and sysctl resources; `iptables` parses what
`iptables-save` shows and builds the `iptables-restore --noflush` input for a set of actions.
An nftables backend would replace `iptables` (and observe/execute's thin wrappers) only.
"""
