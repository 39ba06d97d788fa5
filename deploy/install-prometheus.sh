#!/usr/bin/env bash
# Install promtool + prometheus (Debian's "prometheus" package) and the Alertmanager with amtool
# ("prometheus-alertmanager") if they are missing.
# Idempotent: does nothing when every binary is already on PATH.
# Exit codes: 0 installed/present, 3 apt unavailable, other = apt failure.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
    && command -v prometheus-alertmanager >/dev/null 2>&1; then
    echo "install-prometheus: promtool, prometheus and prometheus-alertmanager already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "################################################################" >&2
    echo "install-prometheus: apt-get is NOT available on this machine;"      >&2
    echo "cannot install promtool/prometheus. Install them manually"          >&2
    echo "(https://prometheus.io/download/) and put them on PATH."            >&2
    echo "################################################################" >&2
    exit 3
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-prometheus: need root (or sudo) to run apt-get" >&2
        exit 3
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-prometheus: apt-get update"
$SUDO apt-get update -qq
echo "install-prometheus: apt-get install prometheus prometheus-alertmanager"
# --no-install-recommends keeps node-exporter etc. out; policy-rc.d is not touched, so on
# systems with systemd the packaged services may start; the tests run their own servers.
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager

command -v promtool >/dev/null 2>&1 || { echo "install-prometheus: promtool missing after install" >&2; exit 1; }
command -v prometheus >/dev/null 2>&1 || { echo "install-prometheus: prometheus missing after install" >&2; exit 1; }
command -v prometheus-alertmanager >/dev/null 2>&1 || { echo "install-prometheus: prometheus-alertmanager missing after install" >&2; exit 1; }
echo "install-prometheus: installed $(prometheus --version 2>&1 | head -n1)"
