#!/usr/bin/env python3
"""Firewall benchmark: N containers on one bridge, each publishing one TCP port, with netctl
and the peers a user would otherwise pick, side by side in the same run.

    sudo .venv/bin/python benchmarks/firewall_run.py                  # N = 200, 3 runs, all tools
    sudo .venv/bin/python benchmarks/firewall_run.py --markdown --json /tmp/fw.json
    sudo .venv/bin/python benchmarks/firewall_run.py --n 50 --runs 1 --tools netctl,floor
    sudo .venv/bin/python benchmarks/firewall_run.py --profile        # netctl under cProfile

Container cI (I = 1..N): a namespace, a veth on one bridge, an address in 172.17.0.0/16, a
default route, and host port 10000+I published to cI:80/tcp. Tools (see benchmarks/README.md):

  netctl    `netctl apply -f` of N Container documents with `ports: ["<10000+I>:80"]` on the
            default `bridge` network; no-op = the same apply again; teardown = `netctl delete -f`
  netctl-nft  the same with `--firewall-backend nftables` (table inet netctl, set elements)
  floor     firewall_peer_floor.py: straight-line pyroute2 + ONE iptables-restore for all rules
  shell     firewall_peer_shell.sh: one `ip` command per step, ONE `iptables` CALL PER RULE
  cni       firewall_peer_cni.sh: the CNI plugins loopback, bridge (+ host-local) and portmap,
            invoked directly with their JSON configurations (ADD, DEL)
  netavark  firewall_peer_netavark.sh: `netavark setup|teardown` with network-options JSON

netctl, floor and shell write the same ruleset (netctl's, Docker's bridge semantics: per
container a DNAT, an ACCEPT, a hairpin MASQUERADE and a raw-table anti-spoofing DROP); CNI and
netavark write their own (portmap's and netavark's), which is what their users get.

Per run and tool, three throwaway sandboxes:

  main      setup of N (timed), [netctl: no-op re-apply (timed), then once more with a PATH
            shim that logs every iptables-restore: must be none], teardown of N (timed)
  marginal  setup of 1, then add containers #2..#6 one by one (each timed); add #7..#N;
            then add #N+1..#N+5 one by one (each timed). netctl adds one container with
            `netctl apply -f cI.yaml` (one document; apply merges, like kubectl apply).
  ports     (netctl's two backends only; --no-ports skips it) one container publishing
            1,000 ports applied at once; then one more port published at a time (an apply of
            the same document with one more port) with 10, 200 and 1,000 already published,
            each timed, with the firewall transaction's own share read from netctl's JSON log
  census    (first run only) the main sequence plus adding #N+1 with PATH shims for every
            program the tools run (ip, iptables*, ip6tables*, mkdir, rm, the CNI plugins,
            netavark): how many of each are exec'd, and which tables each iptables-restore
            input touches. Not timed (the shims cost ~2 ms per exec).

Every sandbox is a fresh net+mount+uts+pid namespace (`netctl sandbox`, see
benchmarks/harness.py): this script re-executes itself inside, refuses to go on unless the
network namespace is new and empty, then mounts tmpfs on /run (so /run/netns, /run/netctl,
/run/containers, xtables' lock, ...), /tmp, /var/lib (so /var/lib/cni, /var/lib/netctl) and
/etc/netns, plus a fresh sysfs. The machine's own network namespace, firewall and sysctls are
never touched; everything vanishes with the sandbox's last process.

`tasks` = PIDs allocated in the sandbox's PID namespace during the step (processes AND threads:
each Go plugin and netavark start several threads), including the tool's own process. `execs`
(census) = programs run, from the shims, plus the tool's own process.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    HERE,
    NETCTL,
    PYTHON,
    ROOT,
    STATE_DIR,
    fmt_ms,
    fmt_s,
    fmt_x,
    markdown,
    median,
    plain,
    ratio,
    report,
    require_sandbox,
    sandbox_argv,
    sandboxed,
    source_digest,
    targets_text,
    timed,
    version,
)
from harness import machine as machine_line

NETAVARK = "/usr/lib/podman/netavark"
CNI_DIR = "/usr/lib/cni"
CNI_PLUGINS = ("loopback", "bridge", "host-local", "portmap")

TOOLS = ("floor", "netctl", "netctl-nft", "shell", "cni", "netavark")
NETCTLS = {"netctl": "iptables", "netctl-nft": "nftables"}  # netctl with each firewall backend
BRIDGE = {"netctl": "netctl0", "netctl-nft": "netctl0"}  # the peers: br0
PORT_BASES = (10, 200, 1000)  # published ports already there when one more is published
PORT_ADDS = 5  # ... one at a time, each timed
WORK = "/run/fwbench"
SHIM_DIR = f"{WORK}/shim"
SHIM_CNI = f"{WORK}/shim-cni"
SHIM_LOG = f"{WORK}/execs.log"
SHIMMED = (
    "ip",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "mkdir",
    "rm",
    "sysctl",
    "modprobe",
    "nft",
    "conntrack",
)
SMALL = (2, 3, 4, 5, 6)  # containers added to a 1-container topology (one at a time)
BIG_OFFSETS = (1, 2, 3, 4, 5)  # N+1 .. N+5 added to an N-container topology
SMALL_LABEL = f"#{SMALL[0]}–{SMALL[-1]}"
# "about the same": the floor's own #N+1 / #2 ratio (kernel and iptables-nft work that grows
# with the bridge and the ruleset) is ~1.1x; more than this is growth in the tool itself.
MARGINAL_LIMIT = 1.25
SNAPSHOT_DIGEST = ""  # set by the driver: the digest of the netctl sources measured


def big_label(n: int) -> str:
    return f"#{n + BIG_OFFSETS[0]}–{n + BIG_OFFSETS[-1]}"


# ------------------------------------------------------------------------------------ sandbox


def enter_sandbox(host_netns: str) -> None:
    """Inside: private /run, /tmp, /var/lib and /etc/netns too (the peers keep state there)."""
    require_sandbox(
        host_netns,
        tmpfs=("/run", "/tmp", "/var/lib", "/etc/netns"),
        folders=("/run/netns", "/var/lib/netctl", "/var/lib/cni", "/run/containers",
                 f"{WORK}/work", SHIM_DIR, SHIM_CNI),
    )
    os.environ["TMPDIR"] = "/tmp"
    snapshot = os.environ.get("FWBENCH_SNAPSHOT")
    if snapshot:  # the driver's copy of netctl's sources (see make_snapshot)
        os.environ["PYTHONPATH"] = snapshot


def write_shims() -> None:
    """Bash wrappers (builtins only: no extra process) that log their name and exec the real
    program. iptables-restore's wrapper also logs the tables of its input."""

    def shim(path: str, name: str, real: str) -> None:
        if name.endswith("-restore"):
            body = (
                "t=; input=\n"
                "while IFS= read -r line || [[ -n $line ]]; do\n"
                "  input+=$line$'\\n'; [[ $line == '*'* ]] && t+=${line#'*'},\n"
                "done\n"
                f'echo "{name} ${{t%,}}" >> {SHIM_LOG}\n'
                f'exec {real} "$@" <<< "${{input%$\'\\n\'}}"\n'
            )
        elif name == "nft":  # a transaction (nft -f) apart from reads (nft -j list ...)
            label = '"nft$([[ $1 == -f ]] && echo "(-f)")"'
            body = f'echo {label} >> {SHIM_LOG}\nexec {real} "$@"\n'
        else:
            body = f'echo "{name}" >> {SHIM_LOG}\nexec {real} "$@"\n'
        with open(path, "w") as f:
            f.write("#!/bin/bash\n" + body)
        os.chmod(path, 0o755)

    for name in SHIMMED:
        real = shutil.which(name)
        if real:
            shim(f"{SHIM_DIR}/{name}", name, real)
    shim(f"{SHIM_DIR}/netavark", "netavark", NETAVARK)
    for name in CNI_PLUGINS:
        shim(f"{SHIM_CNI}/{name}", name, f"{CNI_DIR}/{name}")


def shim_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{SHIM_DIR}:{os.environ['PATH']}",
        "CNI_PATH": SHIM_CNI,
        "NETAVARK": f"{SHIM_DIR}/netavark",
    }


def read_shim_log() -> dict[str, Any]:
    """Programs exec'd since the last call, and the tables of each iptables-restore input."""
    try:
        with open(SHIM_LOG) as f:
            lines = f.read().splitlines()
        os.unlink(SHIM_LOG)
    except FileNotFoundError:
        lines = []
    counts = collections.Counter(line.split(" ", 1)[0] for line in lines)
    restores = [
        line.split(" ", 1)[1] if " " in line else "" for line in lines if line.startswith("iptables-restore")
    ]
    return {"execs": dict(sorted(counts.items())), "restore_tables": restores}


# ------------------------------------------------------------------------------------ inside


def container_doc(i: int) -> str:
    return (
        f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: c{i}\n"
        f'spec:\n  networks: [bridge]\n  ports: ["{10000 + i}:80"]\n'
    )


def manifest(first: int, last: int) -> str:
    path = f"{WORK}/work/c{first}-{last}.yaml"
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(f"# containers c{first}..c{last}, one published port each (firewall_run.py)\n")
            f.write("---\n".join(container_doc(i) for i in range(first, last + 1)))
    return path


class Tool:
    """How to run one tool's steps: setup N, add FIRST [LAST], teardown N, no-op."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bridge = BRIDGE.get(name, "br0")
        self.is_netctl = name in NETCTLS
        self.netctl = [NETCTL, "--state-dir", STATE_DIR, "--firewall-backend", NETCTLS.get(name, "iptables")]
        self.peer = {
            "floor": [PYTHON, str(HERE / "firewall_peer_floor.py")],
            "shell": ["bash", str(HERE / "firewall_peer_shell.sh")],
            "cni": ["bash", str(HERE / "firewall_peer_cni.sh")],
            "netavark": ["bash", str(HERE / "firewall_peer_netavark.sh")],
        }.get(name, [])

    def setup(self, n: int) -> list[str]:
        return (
            [*self.netctl, "apply", "-f", manifest(1, n)]
            if self.is_netctl
            else [*self.peer, "setup", str(n)]
        )

    def add(self, first: int, last: int | None = None) -> list[str]:
        last = first if last is None else last
        if self.is_netctl:
            return [*self.netctl, "apply", "-f", manifest(first, last)]
        return [*self.peer, "add", str(first), str(last)]

    def noop(self, n: int) -> list[str] | None:
        return [*self.netctl, "apply", "-f", manifest(1, n)] if self.is_netctl else None

    def teardown(self, n: int) -> list[str]:
        return (
            [*self.netctl, "delete", "-f", manifest(1, n)]
            if self.is_netctl
            else [*self.peer, "teardown", str(n)]
        )


IP = re.compile(r"172\.17\.(?!0\.0/16)(?!0\.1\b)\d+\.\d+")


def ruleset() -> dict[str, Any]:
    """Rule counts per table, the FORWARD policy, and a digest of the ruleset with container
    addresses, ports and netctl's names masked (netctl, floor and shell must agree)."""
    text = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    masked = []
    table = ""
    policy = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":FORWARD ") and table == "filter":
            policy = line.split()[1]
        elif line.startswith("-A "):
            counts[table] = counts.get(table, 0) + 1
            m = re.sub(r"NETCTL-(IN|DNAT)-[0-9a-f]{12}", r"BENCH-\1-br0", line)
            m = m.replace("NETCTL", "BENCH").replace("netctl0", "br0")
            m = re.sub(r"--dport 1\d{4}\b", "--dport PORT", IP.sub("IP", m))
            masked.append(f"{table} {m}")
    digest = hashlib.sha256("\n".join(sorted(masked)).encode()).hexdigest()[:12]
    nft = subprocess.run(["nft", "-j", "list", "table", "inet", "netctl"], capture_output=True, text=True)
    if nft.returncode == 0:  # the nftables backend: its rules and set elements
        items = json.loads(nft.stdout)["nftables"]
        counts["nft"] = sum(1 for i in items if "rule" in i)
        counts["nft elements"] = sum(len((i.get("set") or i.get("map") or {}).get("elem", [])) for i in items)
    iptables_rules = sum(v for k, v in counts.items() if not k.startswith("nft"))
    return {"rules": counts, "total": iptables_rules, "forward_policy": policy, "digest": digest}


def census(bridge: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
    ).stdout
    return {
        "netns": len(os.listdir("/run/netns")),
        "etc": len(os.listdir("/etc/netns")),
        "ports": len([line for line in out.splitlines() if line.strip()]),
        **ruleset(),
    }


def wait_empty(bridge: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = census(bridge)
        if (got["netns"], got["etc"], got["ports"]) == (0, 0, 0) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def changes(output: str) -> int:
    return sum(1 for line in output.splitlines() if line[:2] in ("+ ", "~ ", "- "))


def trial_main(tool: Tool, n: int) -> dict[str, Any]:
    r: dict[str, Any] = {"kind": "main", "tool": tool.name, "n": n}
    r["setup"], r["setup_tasks"], _ = timed(tool.setup(n))
    r["after_setup"] = census(tool.bridge)
    noop = tool.noop(n)
    if noop:
        r["noop"], r["noop_tasks"], out = timed(noop)
        r["noop_changes"] = changes(out)
        write_shims()
        read_shim_log()
        _, _, out = timed(noop, env=shim_env())  # once more, counting what it runs
        log = read_shim_log()
        r["noop_shim"] = log
        r["noop_restores"] = len(log["restore_tables"]) + log["execs"].get("nft(-f)", 0)
        r["noop_changes"] += changes(out)
    r["teardown"], r["teardown_tasks"], _ = timed(tool.teardown(n))
    r["after_teardown"] = wait_empty(tool.bridge)
    s, t = r["after_setup"], r["after_teardown"]
    r["ok"] = (
        (s["netns"], s["etc"], s["ports"]) == (n, n, n)
        and (t["netns"], t["etc"], t["ports"]) == (0, 0, 0)
        and not r.get("noop_changes")
        and not r.get("noop_restores")
    )
    return r


def trial_marginal(tool: Tool, n: int) -> dict[str, Any]:
    r: dict[str, Any] = {"kind": "marginal", "tool": tool.name, "n": n, "small": [], "big": []}
    timed(tool.setup(1))
    for i in SMALL:
        seconds, tasks, _ = timed(tool.add(i))
        r["small"].append({"i": i, "seconds": seconds, "tasks": tasks})
    first = SMALL[-1] + 1
    if tool.is_netctl:
        timed(tool.setup(n))  # the whole manifest: adds c5..cN
    else:
        timed(tool.add(first, n))
    for k in BIG_OFFSETS:
        seconds, tasks, _ = timed(tool.add(n + k))
        r["big"].append({"i": n + k, "seconds": seconds, "tasks": tasks})
    c = census(tool.bridge)
    total = n + len(BIG_OFFSETS)
    r["census"] = c
    r["ok"] = (c["netns"], c["etc"], c["ports"]) == (total, total, total)
    return r


def ports_doc(count: int) -> str:
    """One container publishing `count` ports: host 20000+I -> container 1000+I (distinct
    mappings, so each is its own element or rule: no range folds them)."""
    path = f"{WORK}/work/ports{count}.yaml"
    if not os.path.exists(path):
        ports = ", ".join(f'"{20000 + i}:{1000 + i}"' for i in range(count))
        with open(path, "w") as f:
            f.write(f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: p\n"
                    f"spec:\n  networks: [bridge]\n  ports: [{ports}]\n")
    return path


FIREWALL_KEYS = ("nft:", "chain:", "jump:")  # resource keys of the firewall's actions


def firewall_ms(output: str) -> float:
    """The firewall transaction's own time in an apply, from netctl's JSON action log: the
    first firewall action carries the whole transaction (nft -f, or iptables-restore per
    table), the others ~0."""
    total = 0.0
    for line in output.splitlines():
        if line.startswith("{") and '"action"' in line:
            entry = json.loads(line)
            if entry.get("event") == "action" and str(entry.get("resource", "")).startswith(FIREWALL_KEYS):
                total += float(entry["ms"])
    return total


def trial_ports(tool: Tool, n: int) -> dict[str, Any]:
    """netctl only: 1,000 published ports applied at once (from nothing), then one more port
    published at a time with 10, 200 and 1,000 already there (the same container's manifest
    with one more port: an apply of one changed document). Each apply's wall time, and the
    part of it that is the firewall transaction."""
    r: dict[str, Any] = {"kind": "ports", "tool": tool.name, "n": n, "marginal": {}, "firewall_ms": {}}
    logged = [*tool.netctl, "--log-format", "json", "--log-level", "info"]
    top = PORT_BASES[-1]
    r["apply_1000"], _, _ = timed([*tool.netctl, "apply", "-f", ports_doc(top)])
    timed([*tool.netctl, "delete", "-f", ports_doc(top)])
    for base in PORT_BASES:
        timed([*tool.netctl, "apply", "-f", ports_doc(base)])
        runs = [timed([*logged, "apply", "-f", ports_doc(base + k)]) for k in range(1, PORT_ADDS + 1)]
        r["marginal"][str(base)] = [seconds for seconds, _, _ in runs]
        r["firewall_ms"][str(base)] = [firewall_ms(out) for _, _, out in runs]
    c = census(tool.bridge)
    r["census"] = c
    r["ok"] = c["ports"] == 1
    return r


def trial_census(tool: Tool, n: int) -> dict[str, Any]:
    """The main sequence (+ adding #N+1) with every program the tools run logged by a shim."""
    r: dict[str, Any] = {"kind": "census", "tool": tool.name, "n": n}
    write_shims()
    env = shim_env()
    read_shim_log()
    steps: list[tuple[str, list[str] | None]] = [
        ("setup", tool.setup(n)),
        ("noop", tool.noop(n)),
        (f"add#{n + 1}", tool.add(n + 1)),
        ("teardown", tool.teardown(n)),
    ]
    for label, argv in steps:
        if argv is None:
            continue
        seconds, tasks, _ = timed(argv, env=env)
        log = read_shim_log()
        log["execs_total"] = sum(log["execs"].values()) + 1  # + the tool's own process
        r[label] = {"seconds_with_shims": seconds, "tasks": tasks, **log}
    return r


def inside(args: argparse.Namespace) -> int:
    enter_sandbox(args.host_netns)
    tool = Tool(args.tool)
    try:
        trial = {"main": trial_main, "marginal": trial_marginal, "census": trial_census,
                 "ports": trial_ports}[args.kind]
        result = trial(tool, args.n)
    except Exception as exc:  # report to the driver, which prints it
        result = {"kind": args.kind, "tool": args.tool, "n": args.n, "error": str(exc)}
    report(result)
    return 0


# ------------------------------------------------------------------------------------ profile


def inside_profile(args: argparse.Namespace) -> int:
    """netctl's setup, no-op and add #N+1 under cProfile (real times printed first)."""
    import io
    import pstats

    enter_sandbox(args.host_netns)
    n = args.n
    base = ["--state-dir", STATE_DIR]
    steps = (
        ("setup", ["apply", "-f", manifest(1, n)]),
        ("no-op", ["apply", "-f", manifest(1, n)]),
        (f"add #{n + 1}", ["apply", "-f", manifest(n + 1, n + 1)]),
        (f"add #{n + 2}", ["apply", "-f", manifest(n + 2, n + 2)]),
    )
    real = {}
    for label, argv in steps:
        real[label], _, _ = timed([NETCTL, *base, *argv])
    timed([NETCTL, *base, "delete", "-f", manifest(1, n + 2)])
    time.sleep(1 + n * 0.004)
    for label, argv in steps:
        if label == f"add #{n + 2}":
            continue
        out = f"{WORK}/work/{label.replace(' ', '').replace('#', '')}.prof"
        timed([PYTHON, "-m", "cProfile", "-o", out, "-m", "controller.cli", *base, *argv])
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(out, args.keep)
        print(f"\n======== {label} (N={n}): {real[label]:.3f} s unprofiled")
        for restriction, key in ((("controller/", args.top), "cumulative"), ((args.top,), "tottime")):
            buf = io.StringIO()
            stats = pstats.Stats(out, stream=buf)
            stats.sort_stats(key).print_stats(*restriction)
            text = buf.getvalue()
            text = text[text.find("   ncalls") :]
            print(f"---- by {key}{' (controller/ only)' if key == 'cumulative' else ''}")
            print("\n".join(line[:200] for line in text.rstrip().splitlines()))
    print("\nreal (unprofiled): " + ", ".join(f"{k} {v:.3f} s" for k, v in real.items()))
    return 0


# ------------------------------------------------------------------------------------ driver


def summarize(results: list[dict[str, Any]], tools: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        main = [r for r in results if r.get("tool") == tool and r.get("kind") == "main" and "error" not in r]
        marg = [
            r for r in results if r.get("tool") == tool and r.get("kind") == "marginal" and "error" not in r
        ]
        cens = next(
            (r for r in results if r.get("tool") == tool and r.get("kind") == "census" and "error" not in r),
            None,
        )
        ports = [
            r for r in results if r.get("tool") == tool and r.get("kind") == "ports" and "error" not in r
        ]
        small = [x for r in marg for x in r["small"]]
        big = [x for r in marg for x in r["big"]]
        mine = [r for r in results if r.get("tool") == tool]
        errors = [r for r in mine if "error" in r and not r["kind"].endswith("-failed")]
        retried = [r for r in mine if r["kind"].endswith("-failed")]
        s: dict[str, Any] = {
            "runs": len(main),
            "marginal_runs": len(marg),
            "errors": len(errors),
            "retried": len(retried),
            "ok": all(r["ok"] for r in main + marg + ports) and not errors,
            "apply_1000": median([r["apply_1000"] for r in ports]),
            "port_marginal": {
                base: median([x for r in ports for x in r["marginal"][str(base)]]) for base in PORT_BASES
            } if ports else {},
            "port_firewall_ms": {
                base: median([x for r in ports for x in r["firewall_ms"][str(base)]]) for base in PORT_BASES
            } if ports else {},
            "setup": median([r["setup"] for r in main]),
            "noop": median([r.get("noop") for r in main]),
            "teardown": median([r["teardown"] for r in main]),
            "setup_tasks": median([r["setup_tasks"] for r in main]),
            "noop_tasks": median([r.get("noop_tasks") for r in main]),
            "teardown_tasks": median([r["teardown_tasks"] for r in main]),
            "noop_restores": [r["noop_restores"] for r in main if "noop_restores" in r],
            "add_small": median([x["seconds"] for x in small]),
            "add_big": median([x["seconds"] for x in big]),
            "add_small_tasks": median([x["tasks"] for x in small]),
            "add_big_tasks": median([x["tasks"] for x in big]),
            "setup_all": [round(r["setup"], 3) for r in main],
            "setup_by_run": {r.get("run", i): r["setup"] for i, r in enumerate(main)},
            "noop_all": [round(r["noop"], 3) for r in main if "noop" in r],
            "teardown_all": [round(r["teardown"], 3) for r in main],
            "add_small_all": [round(x["seconds"], 4) for x in small],
            "add_big_all": [round(x["seconds"], 4) for x in big],
            "after_setup": main[0]["after_setup"] if main else None,
            "after_teardown": main[0]["after_teardown"] if main else None,
            "census": cens,
        }
        out[tool] = s
    return out


def fn(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def exec_summary(step: dict[str, Any] | None) -> str:
    """`1,234: ip 600, iptables 400, ...` from a census step."""
    if not step:
        return "—"
    execs = step["execs"]
    parts = [f"{name} {count}" for name, count in sorted(execs.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"{step['execs_total']} ({', '.join(parts) or 'none'})"


def restore_summary(step: dict[str, Any] | None) -> str:
    if not step:
        return "—"
    tables = step["restore_tables"]
    if not tables:
        return "0"
    return f"{len(tables)} ({'; '.join(t or '?' for t in tables)})"


def tables_text(
    summary: dict[str, dict[str, Any]], tools: list[str], n: int
) -> list[tuple[str, list[str], list[list[str]]]]:
    floor = summary.get("floor", {})
    netavark = summary.get("netavark", {})
    times_h = [
        "tool",
        "setup s",
        "no-op s",
        "teardown s",
        f"add {SMALL_LABEL} ms",
        f"add {big_label(n)} ms",
        f"#{n + 1} ÷ #2",
        "setup ÷ floor",
        "netavark ÷ tool (setup)",
    ]
    times = []
    for tool in tools:
        s = summary.get(tool)
        if not s or not s["runs"]:
            times.append([tool, "error", "", "", "", "", "", "", ""])
            continue
        flag = "" if s["ok"] else " (!)"
        if s["retried"]:
            flag += f" ({s['retried']} sandbox(es) failed and ran again)"
        times.append(
            [
                f"**{tool}**{flag}" if tool in NETCTLS else tool + flag,
                fmt_s(s["setup"]),
                fmt_s(s["noop"]),
                fmt_s(s["teardown"]),
                fmt_ms(s["add_small"]),
                fmt_ms(s["add_big"]),
                fmt_x(ratio(s["add_big"], s["add_small"])),
                fmt_x(ratio(s["setup"], floor.get("setup"))) if tool != "floor" else "",
                fmt_x(ratio(netavark.get("setup"), s["setup"])) if tool != "netavark" else "",
            ]
        )
    procs_h = [
        "tool",
        "setup tasks",
        "setup execs (programs run)",
        "iptables-restore in setup (tables)",
        "no-op: tasks / iptables-restore",
        f"add #2 / #{n + 1}: tasks",
        f"add #{n + 1}: execs",
        "teardown tasks",
        "rules after setup (raw/nat/filter)",
    ]
    procs = []
    for tool in tools:
        s = summary.get(tool)
        if not s or not s["runs"]:
            procs.append([tool] + [""] * 8)
            continue
        c = s["census"] or {}
        a = s["after_setup"] or {"rules": {}, "total": 0}
        rules = a["rules"]
        noop = (
            "—"
            if s["noop"] is None
            else f"{fn(s['noop_tasks'])} / {max(s['noop_restores']) if s['noop_restores'] else '?'}"
        )
        procs.append(
            [
                tool,
                fn(s["setup_tasks"]),
                exec_summary(c.get("setup")),
                restore_summary(c.get("setup")),
                noop,
                f"{fn(s['add_small_tasks'])} / {fn(s['add_big_tasks'])}",
                exec_summary(c.get(f"add#{n + 1}")),
                fn(s["teardown_tasks"]),
                f"{a['total']} ({rules.get('raw', 0)}/{rules.get('nat', 0)}/{rules.get('filter', 0)})",
            ]
        )
    spread_h = [
        "tool",
        "setup min–max s",
        "no-op min–max s",
        "teardown min–max s",
        f"add {SMALL_LABEL} min–max ms",
        f"add {big_label(n)} min–max ms",
    ]
    spread = []
    for tool in tools:
        s = summary.get(tool)
        if not s or not s["runs"]:
            continue

        def rng(vals: list[float], scale: float = 1.0, d: int = 2) -> str:
            return f"{min(vals) * scale:.{d}f}–{max(vals) * scale:.{d}f}" if vals else "—"

        spread.append(
            [
                tool,
                rng(s["setup_all"]),
                rng(s["noop_all"]),
                rng(s["teardown_all"]),
                rng(s["add_small_all"], 1000, 0),
                rng(s["add_big_all"], 1000, 0),
            ]
        )
    ports_h = ["tool", f"apply {PORT_BASES[-1]:,} ports s", *(f"+1 port at {b:,} ms" for b in PORT_BASES),
               f"+1 at {PORT_BASES[-1]:,} ÷ +1 at {PORT_BASES[0]}",
               *(f"firewall part at {b:,} ms" for b in PORT_BASES), "firewall part ÷"]
    ports = []
    for tool in tools:
        s = summary.get(tool)
        if not s or not s["port_marginal"]:
            continue
        m, f = s["port_marginal"], s["port_firewall_ms"]
        ports.append([tool, fmt_s(s["apply_1000"]), *(fmt_ms(m[b]) for b in PORT_BASES),
                      fmt_x(ratio(m[PORT_BASES[-1]], m[PORT_BASES[0]])),
                      *(f"{f[b]:.1f}" for b in PORT_BASES),
                      fmt_x(ratio(f[PORT_BASES[-1]], f[PORT_BASES[0]]))])
    return [("times", times_h, times), ("processes", procs_h, procs), ("spread", spread_h, spread),
            ("published ports (one container)", ports_h, ports)]


def targets(summary: dict[str, dict[str, Any]], n: int) -> list[tuple[str, str, bool | None]]:
    checks: list[tuple[str, str, bool | None]] = []
    net = summary.get("netctl")
    if not net or not net["runs"]:
        return checks
    floor, navk = summary.get("floor"), summary.get("netavark")

    def per_run(a: dict[str, Any], b: dict[str, Any]) -> str:
        """The same ratio within each run (the tools ran back to back, under the same load)."""
        runs = sorted(set(a["setup_by_run"]) & set(b["setup_by_run"]))
        each = [a["setup_by_run"][k] / b["setup_by_run"][k] for k in runs if b["setup_by_run"][k]]
        return f" (per run: {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else ""

    if floor and floor["runs"]:
        r = ratio(net["setup"], floor["setup"])
        checks.append(
            (f"N={n}: netctl setup ≤ 2× floor", fmt_x(r) + per_run(net, floor), r is not None and r <= 2.0)
        )
    if navk and navk["runs"]:
        r = ratio(navk["setup"], net["setup"])
        checks.append(
            (
                f"N={n}: netctl setup ≥ 5× faster than netavark",
                fmt_x(r) + per_run(navk, net),
                r is not None and r >= 5.0,
            )
        )
    c = net["census"]
    if c:
        for step in ("setup", f"add#{n + 1}"):
            tables = c[step]["restore_tables"]
            per_table = collections.Counter(t for entry in tables for t in entry.split(",") if t)
            ok = (
                bool(tables)
                and max(per_table.values()) == 1
                and not c[step]["execs"].get("iptables", 0) - (1 if step == "setup" else 0) > 0
            )
            checks.append(
                (
                    f"{step.replace('#', ' #')}: one iptables-restore per table, no per-rule exec",
                    f"{restore_summary(c[step])}; iptables {c[step]['execs'].get('iptables', 0)}",
                    ok,
                )
            )
    if net["noop_restores"]:
        worst = max(net["noop_restores"])
        checks.append(
            (
                "no-op re-apply: no iptables-restore",
                f"{worst} (each of {len(net['noop_restores'])} runs)",
                worst == 0,
            )
        )
    nft = summary.get("netctl-nft")
    if nft and nft["runs"]:
        r = ratio(nft["setup"], net["setup"])
        checks.append((f"N={n}: netctl-nft setup no slower than netctl (iptables)",
                       fmt_x(r) + per_run(nft, net), r is not None and r <= 1.0))
        if nft["census"]:
            for step in ("setup", f"add#{n + 1}"):
                count = nft["census"][step]["execs"].get("nft(-f)", 0)
                label = f"netctl-nft {step.replace('#', ' #')}: one nft transaction"
                checks.append((label, str(count), count == 1))
        if nft["noop_restores"]:
            worst = max(nft["noop_restores"])
            checks.append(("netctl-nft no-op re-apply: no nft -f", str(worst), worst == 0))
    for name in NETCTLS:
        m = summary.get(name, {}).get("port_marginal")
        if not m:
            continue
        r = ratio(m[PORT_BASES[-1]], m[PORT_BASES[0]])
        limit = 1.1 if name == "netctl-nft" else MARGINAL_LIMIT
        at = f"at {PORT_BASES[-1]:,} ≤ {limit}× at {PORT_BASES[0]}"
        checks.append((f"{name}: +1 published port {at} (apply)",
                       f"{fmt_ms(m[PORT_BASES[-1]])} vs {fmt_ms(m[PORT_BASES[0]])} ms = {fmt_x(r)}",
                       r is not None and r <= limit))
        f = summary[name]["port_firewall_ms"]
        r = ratio(f[PORT_BASES[-1]], f[PORT_BASES[0]])
        checks.append((f"{name}: its firewall transaction {at}",
                       f"{f[PORT_BASES[-1]]:.1f} vs {f[PORT_BASES[0]]:.1f} ms = {fmt_x(r)}",
                       r is not None and r <= limit))
        a = summary[name]["apply_1000"]
        checks.append((f"{name}: {PORT_BASES[-1]:,} published ports applied in < 1 s", fmt_s(a) + " s",
                       a is not None and a < 1.0))
    r = ratio(net["add_big"], net["add_small"])
    delta = None if net["add_big"] is None or net["add_small"] is None else net["add_big"] - net["add_small"]
    checks.append(
        (
            f"add #{n + 1} costs about what add #2 did (≤ {MARGINAL_LIMIT}×)",
            f"{fmt_ms(net['add_big'])} ms vs {fmt_ms(net['add_small'])} ms = {fmt_x(r)} "
            f"({'—' if delta is None else f'{delta * 1000:+.0f}'} ms)",
            r is not None and r <= MARGINAL_LIMIT,
        )
    )
    return checks


def make_snapshot() -> Path:
    """A private copy of netctl's sources (controller/, schemas/, manifests/), byte-compiled:
    other people edit the working tree while a run takes minutes, and every sample must
    measure the same netctl. The sandboxes put it first on PYTHONPATH, ahead of the editable
    install; `netctl` is still the venv's console script. Lives under /var/tmp (the sandboxes
    hide /tmp); removed at the end."""
    import tempfile

    snap = Path(tempfile.mkdtemp(prefix="netctl-fwbench-", dir="/var/tmp"))
    for folder in ("controller", "schemas", "manifests"):
        shutil.copytree(ROOT / folder, snap / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(snap / "controller")], check=True)
    return snap


def machine() -> str:
    cni = (
        subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"],
            capture_output=True,
            text=True,
        ).stdout
        or "?"
    )
    peers = [version(["iptables", "--version"]), version([NETAVARK, "--version"]), f"CNI plugins {cni}"]
    return machine_line(peers, SNAPSHOT_DIGEST)


def render(
    summary: dict[str, dict[str, Any]], tools: list[str], args: argparse.Namespace, loads: list[float]
) -> None:
    n = args.n
    print(f"Machine: {machine()}")
    if loads:
        print(
            f"Load average (1 min) when each sandbox started: {min(loads):.2f}–{max(loads):.2f} "
            f"(median {statistics.median(loads):.2f}) on {os.cpu_count()} CPUs\n"
        )
    print(
        f"N = {n}; medians of {args.runs} run(s), each measurement in a fresh sandbox; "
        f"add {SMALL_LABEL} and {big_label(n)}: medians of {len(SMALL) * args.runs} "
        "single-container adds each.\n"
    )
    checks = targets(summary, n)
    for name, headers, body in tables_text(summary, tools, n):
        if args.markdown:
            print(markdown(headers, body) + "\n")
        else:
            print(f"-- {name}\n{plain(headers, body)}\n")
    digests = {
        t: (summary[t]["after_setup"] or {}).get("digest") for t in tools if summary.get(t, {}).get("runs")
    }
    same = [t for t in ("floor", "shell") if t in digests and digests[t] == digests.get("netctl")]
    if "netctl" in digests:
        print(
            f"Same ruleset as netctl (addresses, ports and chain names masked): {', '.join(same) or 'none'}"
            f"{'' if len(same) == len([t for t in ('floor', 'shell') if t in digests]) else ' (!)'}\n"
        )
    if checks:
        print(targets_text(checks, args.markdown))


def driver(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, mounts); runs everything inside throwaway sandboxes")
    if args.profile:
        argv = ["--profile", "--n", str(args.n), "--top", str(args.top)]
        if args.keep:
            argv += ["--keep", os.path.abspath(args.keep)]
        return subprocess.run(sandbox_argv(Path(__file__), argv)).returncode
    if args.n <= SMALL[-1]:
        sys.exit(f"--n must be more than {SMALL[-1]} (the marginal trial adds {SMALL_LABEL} first)")
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            sys.exit(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    results: list[dict[str, Any]] = []
    loads: list[float] = []
    global SNAPSHOT_DIGEST
    snapshot = make_snapshot()
    os.environ["FWBENCH_SNAPSHOT"] = str(snapshot)
    SNAPSHOT_DIGEST = source_digest(snapshot)
    try:
        return measure(args, tools, results, loads)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def measure(
    args: argparse.Namespace, tools: list[str], results: list[dict[str, Any]], loads: list[float]
) -> int:
    kinds = ["main", "marginal", *(["ports"] if args.ports else [])]
    for run in range(args.runs):
        order = tools[run % len(tools) :] + tools[: run % len(tools)]
        for kind in kinds + (["census"] if run == 0 and not args.no_census else []):
            for tool in order:
                if kind == "ports" and tool not in NETCTLS:
                    continue
                load = os.getloadavg()[0]
                loads.append(load)
                t0 = time.perf_counter()
                argv = ["--kind", kind, "--tool", tool, "--n", str(args.n)]
                result = sandboxed(Path(__file__), argv, args.timeout)
                for _ in range(args.retries):
                    if "error" not in result:
                        break
                    # e.g. a process killed from outside: the machine is shared. Say so, go again.
                    print(f"run {run + 1} {kind} {tool}: ERROR {result['error']} (retrying)", file=sys.stderr)
                    result["retried"] = True
                    results.append({**result, "kind": f"{kind}-failed", "tool": tool, "run": run})
                    time.sleep(args.settle + args.n * args.settle_per_container)
                    result = sandboxed(Path(__file__), argv, args.timeout)
                result.setdefault("tool", tool)
                result.setdefault("kind", kind)
                result["load"] = load
                result["run"] = run
                results.append(result)
                wall = time.perf_counter() - t0
                if "error" in result:
                    print(f"run {run + 1} {kind} {tool}: ERROR {result['error']}", file=sys.stderr)
                elif kind == "main":
                    extra = (
                        ""
                        if "noop" not in result
                        else f" noop {result['noop']:.3f}s (restores {result['noop_restores']})"
                    )
                    print(
                        f"run {run + 1} main {tool}: setup {result['setup']:.3f}s{extra} teardown "
                        f"{result['teardown']:.3f}s tasks {result['setup_tasks']} rules "
                        f"{result['after_setup']['total']} load {load:.2f}"
                        f"{'' if result['ok'] else '  (!) check failed: ' + json.dumps(result)[:1500]}",
                        file=sys.stderr,
                    )
                elif kind == "marginal":
                    sm = ", ".join(f"{x['seconds'] * 1000:.0f}" for x in result["small"])
                    bg = ", ".join(f"{x['seconds'] * 1000:.0f}" for x in result["big"])
                    print(
                        f"run {run + 1} marginal {tool}: add {SMALL_LABEL} {sm} ms; add {big_label(args.n)} "
                        f"{bg} ms; load {load:.2f}"
                        f"{'' if result['ok'] else '  (!) ' + json.dumps(result['census'])}",
                        file=sys.stderr,
                    )
                elif kind == "ports":
                    print(
                        f"run {run + 1} ports {tool}: apply {PORT_BASES[-1]} {result['apply_1000']:.3f}s; +1 "
                        + ", ".join(f"at {b}: {statistics.median(v) * 1000:.0f} ms "
                                    f"(firewall {statistics.median(result['firewall_ms'][b]):.1f} ms)"
                                    for b, v in result["marginal"].items()),
                        file=sys.stderr,
                    )
                else:
                    print(
                        f"run {run + 1} census {tool}: "
                        + "; ".join(
                            f"{k}: {exec_summary(v)} restores {restore_summary(v)}"
                            for k, v in result.items()
                            if isinstance(v, dict) and "execs" in v
                        ),
                        file=sys.stderr,
                    )
                # let the kernel finish destroying the sandbox's namespaces before the next one
                time.sleep(args.settle + args.n * args.settle_per_container)
                if args.verbose:
                    print(f"   ({wall:.1f} s)", file=sys.stderr)
    if set(NETCTLS) & set(tools) and source_digest() != SNAPSHOT_DIGEST:
        print(
            f"note: the working tree's controller/ is now {source_digest()}; measured: the snapshot "
            f"{SNAPSHOT_DIGEST} taken at the start",
            file=sys.stderr,
        )
    summary = summarize(results, tools)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine(),
                    "n": args.n,
                    "runs": args.runs,
                    "loads": loads,
                    "results": results,
                    "summary": summary,
                },
                f,
                indent=2,
            )
    render(summary, tools, args, loads)
    return 0 if all(s["ok"] for s in summary.values()) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="containers (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per tool (default: %(default)s)")
    p.add_argument("--tools", default=",".join(TOOLS), help="default: %(default)s")
    p.add_argument("--no-census", action="store_true", help="skip the (untimed) shimmed census pass")
    p.add_argument("--no-ports", dest="ports", action="store_false",
                   help="skip the published-ports trial (netctl's backends: 1,000 ports, +1 at 10/200/1,000)")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds to wait after each sandbox (default: %(default)s) ...",
    )
    p.add_argument(
        "--settle-per-container",
        type=float,
        default=0.004,
        help="... plus this many per container (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=900, help="per sandbox, seconds")
    p.add_argument(
        "--retries", type=int, default=1, help="run a failed sandbox again this often (default: %(default)s)"
    )
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for README.md)")
    p.add_argument("--json", help="also write all samples and medians to this file")
    p.add_argument("--verbose", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead: netctl's setup, no-op and add #N+1 under cProfile, in a sandbox",
    )
    p.add_argument("--top", type=int, default=25, help="--profile: functions to list")
    p.add_argument("--keep", help="--profile: copy the .prof files to this folder")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--tool", help=argparse.SUPPRESS)
    p.add_argument("--host-netns", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inside:
        return inside_profile(args) if args.profile else inside(args)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
