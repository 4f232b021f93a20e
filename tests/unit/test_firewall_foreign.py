"""Rules netctl does not own, walked for one packet (firewall/foreign.py)."""

from __future__ import annotations

from controller.firewall.foreign import Flow, first_decision

OUT = Flow("10.10.1.10", "198.18.0.2", "tcp", 8000, iif="br-front", oif="uplink")
NETCTL_JUMPS = ["-j NETCTL-USER", "-j NETCTL-FORWARD"]


def test_a_drop_above_netctls_jump_decides_first() -> None:
    chains = {"FORWARD": ["-s 10.10.1.10/32 -j DROP", *NETCTL_JUMPS], "NETCTL-USER": ["-j RETURN"]}
    walk = first_decision(OUT, chains, netctl_owns_forward=True)
    assert walk.decision is not None and walk.decision.verdict == "DROP"
    assert walk.decision.where == "FORWARD, rule 1 (-s 10.10.1.10/32 -j DROP)"
    other = Flow("10.10.1.11", "198.18.0.2", "tcp", 8000, iif="br-front", oif="uplink")
    assert first_decision(other, chains, netctl_owns_forward=True).decision is None


def test_below_netctls_jump_nothing_is_consulted_with_the_iptables_backend() -> None:
    chains = {"FORWARD": [*NETCTL_JUMPS, "-j DROP"], "NETCTL-USER": []}
    assert first_decision(OUT, chains, netctl_owns_forward=True).decision is None
    # nftables backend: iptables' FORWARD is another base chain, its drop stands
    walk = first_decision(OUT, {"FORWARD": ["-j DROP"]}, netctl_owns_forward=False)
    assert walk.decision is not None and walk.decision.verdict == "DROP"
    # ... and its accept ends only that chain
    assert first_decision(OUT, {"FORWARD": ["-j ACCEPT", "-j DROP"]}, False).decision is None


def test_the_users_chain_and_its_matches() -> None:
    user = ['-i br-front ! -o br-front -p tcp -m tcp --dport 7000:8000 -m comment --comment "8k" -j REJECT']
    walk = first_decision(OUT, {"FORWARD": NETCTL_JUMPS, "NETCTL-USER": user}, True)
    assert walk.decision is not None and walk.decision.where.startswith("NETCTL-USER, rule 1")
    for miss in ("-p udp -j DROP", "-d 10.0.0.0/8 -j DROP", "-o br+ -j DROP", "! -s 10.10.1.0/24 -j DROP",
                 "-p tcp -m multiport --dports 22,443 -j DROP"):
        assert first_decision(OUT, {"FORWARD": [miss, *NETCTL_JUMPS]}, True).decision is None, miss
    accept = first_decision(OUT, {"FORWARD": ["-o uplink -j ACCEPT", *NETCTL_JUMPS]}, True).decision
    assert accept is not None and accept.verdict == "ACCEPT"


def test_a_match_not_evaluated_is_said_not_guessed() -> None:
    walk = first_decision(OUT, {"FORWARD": ["-m mark --mark 0x1 -j DROP", *NETCTL_JUMPS]}, True)
    assert walk.decision is None and walk.unsure == ["FORWARD, rule 1 (-m mark --mark 0x1 -j DROP)"]
    unknown_iface = Flow("10.10.1.10", "198.18.0.2", "tcp", 8000)
    walk = first_decision(unknown_iface, {"FORWARD": ["-o eth0 -j DROP"]}, True)
    assert walk.decision is None and walk.unsure
