#!/usr/bin/env bash
# leftovers.sh CMD [ARG...] runs CMD (the test suite) and then fails, naming
# them, if it left anything behind: entries of the temporary directory that
# were not there before, or processes of the kinds the tests start
# (Prometheus, HAProxy, QEMU, libvirt, dnsmasq, mitosis, demo-node, vcsim,
# a browser, a test binary) that started during the run and still run.
#
# It exits with CMD's status when nothing is left, 1 otherwise. A process
# is this run's when it carries the run's mark (MITOSIS_LEFTOVERS_RUN, in
# the environment CMD inherits) or runs in this repository; one with
# neither (QEMU under libvirt) is counted too, as is any new entry of the
# temporary directory: another run on the same machine at the same time
# may show up, and the report names each leftover, with its command line,
# so a person can tell. make test runs it on a machine of its own.
set -uo pipefail

tmp=${TMPDIR:-/tmp}
kinds='^(prometheus|haproxy|qemu-system.*|qemu-img|libvirtd|virtlogd|dnsmasq|mitosis.*|demo-node.*|vcsim.*|chrom.*|headless_shell|.*\.test)$'

# processes prints "PID STARTTIME COMM" for every process: the start time
# (in clock ticks since boot) tells a new process from an old one whose
# PID was reused.
processes() {
	local f stat pid rest comm a0
	for f in /proc/[0-9]*/stat; do
		{ read -r stat <"$f"; } 2>/dev/null || continue
		pid=${stat%% *}
		comm=${stat#*(}
		comm=${comm%)*}
		rest=${stat##*) }
		# The kernel cuts a name at 15 characters (hypervisortest.): the
		# program's own name is in its command line.
		if [ ${#comm} -ge 15 ]; then
			{ IFS= read -r -d '' a0 <"/proc/$pid/cmdline"; } 2>/dev/null
			[ -n "${a0:-}" ] && comm=${a0##*/}
			comm=${comm// /_}
		fi
		# After "PID (COMM) ", the start time is the 20th field.
		set -- $rest
		echo "$pid ${20} $comm"
	done
}

entries() { ls -A "$tmp" 2>/dev/null | sort; }

# ours says whether a new process belongs to this run rather than to
# another one on the machine: it carries this run's mark in its
# environment, or no mark and a working directory in this repository, or,
# having neither (libvirt starts QEMU with an environment and a directory
# of its own), no other run's mark.
ours() {
	local pid=$1 env cwd
	[ -d "/proc/$pid" ] || return 1 # gone meanwhile
	env=$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep '^MITOSIS_LEFTOVERS_RUN=' || true)
	[ "$env" = "MITOSIS_LEFTOVERS_RUN=$run" ] && return 0
	[ -n "$env" ] && return 1
	cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1 # gone meanwhile
	case "$cwd" in
	"$repo" | "$repo"/*) return 0 ;;
	*/*) # a Go test binary or build elsewhere is another tree's
		[[ $2 == *.test || $2 == go ]] && return 1 ;;
	esac
	return 0
}

repo=$(cd "$(dirname "$0")/.." && pwd -P)
run="$$-$(date +%s%N)"
export MITOSIS_LEFTOVERS_RUN=$run
before_procs=$(processes | awk '{print $1, $2}' | sort)
before_tmp=$(entries)
own=$$

"$@"
status=$?

# new_procs prints this run's processes of a watched kind not there before.
new_procs() {
	processes | awk -v kinds="$kinds" -v own="$own" '$1 != own && $3 ~ kinds {print}' |
		while read -r pid start comm; do
			grep -qx "$pid $start" <<<"$before_procs" && continue
			ours "$pid" "$comm" && echo "$pid $comm"
		done
}

# A process killed by a test's last cleanup may take a moment to go.
left=$(new_procs)
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ -z "$left" ] && break
	sleep 0.5
	left=$(new_procs)
done
# Entries still there after the grace period (a test's removal may be
# under way as the command returns).
new_tmp=$(comm -13 <(echo "$before_tmp") <(entries))
[ -n "$new_tmp" ] && sleep 1 && new_tmp=$(comm -12 <(echo "$new_tmp") <(comm -13 <(echo "$before_tmp") <(entries)))
# An entry named in the command line of a process of another run (its Go
# build directory, its test's files) is that run's, in use.
if [ -n "$new_tmp" ]; then
	others=$(for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[ "$pid" = "$own" ] && continue
		{ args=$(tr '\0' ' ' <"$f") && comm=$(cat "/proc/$pid/comm"); } 2>/dev/null || continue
		# The go command names no directory of its own: its work
		# directories (go-build*) are another run's while it runs.
		[[ $comm == go ]] && ! ours "$pid" "$comm" && echo "$tmp/go-build"
		[[ $args == *"$tmp/"* ]] || continue
		ours "$pid" "$comm" || echo "$args"
	done)
	new_tmp=$(while read -r e; do
		[[ $others == *"$tmp/$e"* || ($e == go-build* && $others == *"$tmp/go-build"*) ]] || echo "$e"
	done <<<"$new_tmp")
fi

fail=0
if [ -n "$left" ]; then
	report=$(while read -r pid comm; do
		args=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-200)
		[ -n "$args" ] && echo "  pid $pid ($comm): $args" # else gone meanwhile
	done <<<"$left")
	if [ -n "$report" ]; then
		echo "leftovers: the run left these processes running:" >&2
		echo "$report" >&2
		fail=1
	fi
fi
if [ -n "$new_tmp" ]; then
	echo "leftovers: the run left these in $tmp:" >&2
	while read -r e; do
		echo "  $tmp/$e ($(du -sh "$tmp/$e" 2>/dev/null | cut -f1))" >&2
	done <<<"$new_tmp"
	fail=1
fi
if [ "$fail" = 1 ]; then
	exit 1
fi
exit "$status"
