#!/usr/bin/env bash
# Stops a control plane started by start.sh DIR: each component by its own
# pid, newest first (kwok, scheduler, controller-manager, apiserver, etcd:
# with etcd gone first the apiserver hangs on shutdown), then removes DIR's
# pid list. DIR itself is left for inspection (logs/); delete it when done.
#
#   bash test/cluster/stop.sh DIR
set -uo pipefail

dir="${1:?usage: stop.sh DIR}"
pids="${dir}/pids"
[[ -f "${pids}" ]] || exit 0

# Named limits: a component gets this long after SIGTERM before SIGKILL.
term_grace_s=10

alive() { kill -0 "$1" 2>/dev/null; }

mapfile -t entries < <(tac "${pids}")
for entry in "${entries[@]}"; do
	pid="${entry%% *}"
	name="${entry#* }"
	[[ -n "${pid}" ]] || continue
	alive "${pid}" || continue
	kill -TERM "${pid}" 2>/dev/null
	deadline=$((SECONDS + term_grace_s))
	# No event tells when another process has exited (it is not our child
	# in this shell), so this polls kill -0.
	while alive "${pid}" && ((SECONDS < deadline)); do sleep 0.2; done
	if alive "${pid}"; then
		echo "stop.sh: ${name} (${pid}) ignored SIGTERM for ${term_grace_s}s; SIGKILL" >&2
		kill -KILL "${pid}" 2>/dev/null
	fi
done
rm -f "${pids}"
