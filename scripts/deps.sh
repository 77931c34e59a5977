#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing: Go's
# modules, and the real servers the tests run against (Debian packages).
# Run as root on Debian; it does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
	echo "deps: Go is missing; install Go $(sed -n 's/^go //p' go.mod) or newer" >&2
	exit 1
fi
go mod download

# What the tests need, each a program (or a file) with the Debian package
# that brings it. One line per component.
declare -A packages=(
	[haproxy]=haproxy
	[promtool]=prometheus
	[libvirtd]=libvirt-daemon
	[virsh]=libvirt-clients
	[/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so]=libvirt-daemon-driver-qemu
	[qemu-system-x86_64]=qemu-system-x86
	[qemu-img]=qemu-utils
	[busybox]=busybox-static
	[dnsmasq]=dnsmasq-base
	[qemu-ga]=qemu-guest-agent
	[chromium]=chromium
)

present() {
	if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
for thing in "${!packages[@]}"; do
	present "$thing" || missing+=("${packages[$thing]}")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run this as root on Debian" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
# The packages must not start their own services: the tests start theirs,
# on loopback, with temporary state.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
