#!/usr/bin/env bash
# The plan package is the pure core: standard library only, no I/O, no clock.
set -euo pipefail
cd "$(dirname "$0")/.."
core=./plan
fail=0

# 1. Nothing outside the standard library, not even the project's own packages.
outside=$(go list -f '{{range .Imports}}{{.}}{{"\n"}}{{end}}' "$core" |
	xargs -r go list -f '{{if not .Standard}}{{.ImportPath}}{{end}}')
if [ -n "$outside" ]; then
	echo "check-core: plan imports non-standard packages:" $outside >&2
	fail=1
fi

# 2. No I/O, randomness or process access among its standard imports.
banned='^(os|os/.*|net|net/.*|io/fs|io/ioutil|syscall|log|log/.*|math/rand|math/rand/v2|crypto/rand|unsafe|runtime/cgo|embed|plugin)$'
bad=$(go list -f '{{range .Imports}}{{.}}{{"\n"}}{{end}}' "$core" | grep -E "$banned" || true)
if [ -n "$bad" ]; then
	echo "check-core: plan imports I/O packages:" $bad >&2
	fail=1
fi

# 3. No clock reads: time enters as an argument.
clock=$(grep -nE 'time\.(Now|Since|Until|Sleep|After|AfterFunc|Tick|NewTimer|NewTicker)\(' $(go list -f '{{range .GoFiles}}{{$.Dir}}/{{.}} {{end}}' "$core") || true)
if [ -n "$clock" ]; then
	echo "check-core: plan reads the clock:" >&2
	echo "$clock" >&2
	fail=1
fi

[ "$fail" = 0 ] && echo "check-core: plan is pure (standard library only, no I/O, no clock)"
exit "$fail"
