#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing. Today that
# is only Go's modules; the real servers (Prometheus, HAProxy, libvirt) join
# this list as the issues that test against them land.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
	echo "deps: Go is missing; install Go $(sed -n 's/^go //p' go.mod) or newer" >&2
	exit 1
fi
go mod download
