"""The cluster store: overlay networks shared by several hosts, kept in etcd.

    etcd.py       a small etcd v3 client over its JSON gateway (HTTP, no extra dependency)
    server.py     run a real etcd (unix sockets, or inside a sandbox) for tests and labs
    config.py     --cluster-store, --cluster-store-opt, --advertise-address -> ClusterConfig
    keys.py       the key layout under /netctl/ (pure)
    state.py      keys and values -> Snapshot: networks, addresses, endpoints, live hosts (pure)
    ipam.py       cluster-wide IDs, VNIs, subnets and addresses: pure picks + etcd txn claims
    lease.py      this host's liveness: /netctl/alive/HOST on a lease
    session.py    the pipeline's hook: cluster networks in, allocations, endpoints published
    agent.py      `netctl overlay agent`: lease, watch, FDB/neighbour programming, catch-up
    probe.py      UDP 4789 reachability probes (sent by preflight, answered by agents)
    preflight.py  advertise address, underlay MTU, UDP 4789 to every peer
    command.py    the CLI's cluster options and `netctl overlay ...`
    lab.py        `netctl sandbox --hosts N`: sandbox hosts on an underlay plus etcd
"""
