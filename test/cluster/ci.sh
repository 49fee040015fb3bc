#!/usr/bin/env bash
# The end-to-end step of .ci/run: build the control plane (cached), start it,
# run the e2e suite against it, and always tear it down.
#
#   bash test/cluster/ci.sh [go test flags...]
#
# Run from the repository root. Extra arguments go to `go test` (e.g.
# -run 'TestOpenAI' -v). PostgreSQL/Redis scenarios need the variables of
# `eval "$(bash test/services.sh start)"`; without them they skip.
# ROTARY_E2E_TIMEOUT bounds the suite (default 25m); ROTARY_E2E_PARALLEL is
# how many scenarios run at once (default 4: each is mostly waiting on the
# API server, rotary and the fakes).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
cd "${root}"

build_start=${SECONDS}
bin="$(bash "${here}/build.sh")"
echo "ci.sh: control-plane binaries ready in $((SECONDS - build_start)) s (${bin})"

cluster="$(mktemp -d "${TMPDIR:-/tmp}/rotary-e2e-cluster.XXXXXX")"
teardown() {
	local rc=$?
	bash "${here}/stop.sh" "${cluster}" || true
	if [[ ${rc} -ne 0 ]]; then
		echo "ci.sh: failed (exit ${rc}); control-plane logs kept in ${cluster}/logs" >&2
	else
		rm -rf "${cluster}"
	fi
	exit "${rc}"
}
trap teardown EXIT
trap 'exit 130' INT TERM

start_at=${SECONDS}
bash "${here}/start.sh" "${cluster}" "${bin}"
echo "ci.sh: control plane up in $((SECONDS - start_at)) s"
# shellcheck disable=SC1091
source "${cluster}/env"

suite_start=${SECONDS}
go test -race -count=1 -timeout "${ROTARY_E2E_TIMEOUT:-25m}" -parallel "${ROTARY_E2E_PARALLEL:-4}" "$@" ./test/e2e/...
echo "ci.sh: e2e suite took $((SECONDS - suite_start)) s"
