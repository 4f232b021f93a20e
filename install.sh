#!/usr/bin/env bash
# Installs everything netctl needs on a fresh Debian machine (run as root):
# system packages (iproute2, iptables, etcd, test peers) and a virtualenv in .venv with netctl.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip iproute2 iptables kmod util-linux procps \
    iputils-ping dnsutils netcat-openbsd tcpdump nftables libnftables1 \
    etcd-server etcd-client aardvark-dns netavark containernetworking-plugins graphviz >/dev/null
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
# The manual page and completions, generated from the parser (netctl man, netctl completion).
mkdir -p /usr/local/share/man/man1 /usr/share/bash-completion/completions
.venv/bin/netctl man > /usr/local/share/man/man1/netctl.1
.venv/bin/netctl completion bash > /usr/share/bash-completion/completions/netctl
echo "installed: $(.venv/bin/netctl --version)"
