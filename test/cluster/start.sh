#!/usr/bin/env bash
# Starts the end-to-end harness's Kubernetes control plane on loopback:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (which plays one node and its kubelet: pods run, Jobs complete, exec and
# logs are served). Everything lives in DIR; stop it with stop.sh DIR.
#
#   bash test/cluster/start.sh DIR [BIN]
#
# BIN is the binary directory (default: what build.sh prints, building if
# needed). On success DIR/env holds the variables the e2e suite reads:
#   ROTARY_E2E_KUBECONFIG  admin kubeconfig (static token, system:masters)
#   ROTARY_E2E_CLUSTER     DIR
#   ROTARY_E2E_EXEC_DIR    working directory of commands run through pods/exec
# Nothing listens on anything but 127.0.0.1; the ports are picked free.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: start.sh DIR [BIN]}"
bin="${2:-}"
[[ -n "${bin}" ]] || bin="$(bash "${here}/build.sh")"

# Named limits.
readyz_timeout_s=60    # apiserver to /readyz (about 4 s on 2 idle cores)
component_timeout_s=90 # default ServiceAccount, node Ready
k8s_version="v1.37.2"

mkdir -p "${dir}"
dir="$(cd "${dir}" && pwd)"
if [[ -e "${dir}/pids" ]]; then
	echo "start.sh: ${dir} already holds a cluster (pids exists): run stop.sh ${dir} first" >&2
	exit 1
fi
mkdir -p "${dir}/pki" "${dir}/logs" "${dir}/etcd" "${dir}/exec"
: >"${dir}/pids"

log() { echo "start.sh: $*" >&2; }

# On any failure, stop what was started and show the newest logs.
started_ok=false
cleanup_on_error() {
	if ! ${started_ok}; then
		log "start failed; last log lines:"
		for f in "${dir}"/logs/*.log; do
			[[ -f "${f}" ]] || continue
			echo "--- ${f}" >&2
			tail -n 15 "${f}" >&2 || true
		done
		bash "${here}/stop.sh" "${dir}" || true
	fi
}
trap cleanup_on_error EXIT

# free_port prints a TCP port on 127.0.0.1 that nothing is bound to, below
# the kernel's ephemeral range (so no outgoing connection holds it), and
# not handed out before by this script. A component that still loses a race
# for it fails at once (see wait_for), not after a timeout.
ephemeral_low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
taken=" "
free_port() {
	local p
	for _ in $(seq 1 500); do
		p=$((10000 + RANDOM % (ephemeral_low - 10000)))
		[[ "${taken}" == *" ${p} "* ]] && continue
		if [[ -z "$(ss -Hltn "sport = :${p}" 2>/dev/null)" ]] && ! (exec 3<>"/dev/tcp/127.0.0.1/${p}") 2>/dev/null; then
			taken+="${p} "
			echo "${p}"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# (Not $(free_port): a subshell would not remember the ports it handed out.)
for v in etcd_port etcd_peer_port api_port kcm_port sched_port kwok_port; do
	free_port >"${dir}/port"
	printf -v "${v}" '%s' "$(cat "${dir}/port")"
done
rm -f "${dir}/port"

# --- PKI: a CA, the apiserver's serving cert, kwok's kubelet serving cert,
# the service-account signing key, the apiserver's kubelet client cert.
pki="${dir}/pki"
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rotary-e2e-ca" \
	-keyout "${pki}/ca.key" -out "${pki}/ca.crt"
issue() { # name CN SAN...
	local name="$1" cn="$2" san="$3"
	openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=${cn}" \
		-keyout "${pki}/${name}.key" -out "${pki}/${name}.csr"
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "${san}" >"${pki}/${name}.ext"
	openssl_quiet x509 -req -in "${pki}/${name}.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" \
		-CAcreateserial -days 2 -extfile "${pki}/${name}.ext" -out "${pki}/${name}.crt"
}
issue apiserver kube-apiserver "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
issue kubelet kwok-node-0 "IP:127.0.0.1,DNS:localhost,DNS:kwok-node-0"
issue kubelet-client "kube-apiserver-kubelet-client" "DNS:kube-apiserver-kubelet-client"
openssl_quiet genrsa -out "${pki}/sa.key" 2048
openssl_quiet rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub"

# A static token for the admin user (the test's own client, the controllers'
# and kwok's). It never leaves DIR and dies with the cluster.
admin_token="$(openssl rand -hex 24)"
printf '%s,rotary-e2e-admin,rotary-e2e-admin,"system:masters"\n' "${admin_token}" >"${pki}/tokens.csv"
# curl reads the header from a file, so the token is not in any argv.
printf 'Authorization: Bearer %s\n' "${admin_token}" >"${pki}/auth-header"
chmod 600 "${pki}"/*.key "${pki}/tokens.csv" "${pki}/auth-header"

kubeconfig="${dir}/admin.kubeconfig"
cat >"${kubeconfig}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority: ${pki}/ca.crt
users:
- name: admin
  user:
    token: ${admin_token}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
EOF
chmod 600 "${kubeconfig}"

# spawn NAME CMD...: start a component in the background, its output in
# logs/NAME.log, its pid appended to pids (stop.sh stops newest first).
spawn() {
	local name="$1"
	shift
	"$@" >"${dir}/logs/${name}.log" 2>&1 &
	echo "$! ${name}" >>"${dir}/pids"
}

# wait_for WHAT SECONDS CMD...: re-run CMD once a second until it succeeds;
# give up at once when a component has died (its log says why).
# (The components offer no notification to wait on: polling their health
# endpoints is the documented way.)
wait_for() {
	local what="$1" limit="$2"
	shift 2
	local deadline=$((SECONDS + limit)) pid name
	until "$@" >/dev/null 2>&1; do
		while read -r pid name; do
			if ! kill -0 "${pid}" 2>/dev/null; then
				log "${name} exited while waiting for ${what}: see ${dir}/logs/${name}.log"
				return 1
			fi
		done <"${dir}/pids"
		if ((SECONDS >= deadline)); then
			log "timed out after ${limit}s waiting for ${what}"
			return 1
		fi
		sleep 1
	done
}

kubectl() { "${bin}/kubectl" --kubeconfig "${kubeconfig}" "$@"; }

log "etcd on 127.0.0.1:${etcd_port}"
spawn etcd "${bin}/etcd" \
	--name e2e --data-dir "${dir}/etcd" \
	--listen-client-urls "http://127.0.0.1:${etcd_port}" \
	--advertise-client-urls "http://127.0.0.1:${etcd_port}" \
	--listen-peer-urls "http://127.0.0.1:${etcd_peer_port}" \
	--initial-advertise-peer-urls "http://127.0.0.1:${etcd_peer_port}" \
	--initial-cluster "e2e=http://127.0.0.1:${etcd_peer_port}" \
	--unsafe-no-fsync --quota-backend-bytes 1073741824 --log-level warn
wait_for "etcd health" "${readyz_timeout_s}" curl -fsS "http://127.0.0.1:${etcd_port}/health"

log "kube-apiserver on https://127.0.0.1:${api_port}"
spawn kube-apiserver "${bin}/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:${etcd_port}" \
	--bind-address 127.0.0.1 --secure-port "${api_port}" \
	--advertise-address 127.0.0.1 --endpoint-reconciler-type none \
	--tls-cert-file "${pki}/apiserver.crt" --tls-private-key-file "${pki}/apiserver.key" \
	--client-ca-file "${pki}/ca.crt" \
	--token-auth-file "${pki}/tokens.csv" \
	--authorization-mode Node,RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "${pki}/sa.pub" \
	--service-account-signing-key-file "${pki}/sa.key" \
	--service-cluster-ip-range 10.96.0.0/16 \
	--kubelet-client-certificate "${pki}/kubelet-client.crt" \
	--kubelet-client-key "${pki}/kubelet-client.key" \
	--kubelet-certificate-authority "${pki}/ca.crt" \
	--kubelet-preferred-address-types InternalIP \
	--enable-priority-and-fairness=false \
	--profiling=false \
	--v 1
wait_for "kube-apiserver /readyz" "${readyz_timeout_s}" \
	curl -fsS --cacert "${pki}/ca.crt" -H @"${pki}/auth-header" \
	"https://127.0.0.1:${api_port}/readyz"

log "kube-controller-manager, kube-scheduler"
spawn kube-controller-manager "${bin}/kube-controller-manager" \
	--kubeconfig "${kubeconfig}" \
	--authentication-kubeconfig "${kubeconfig}" --authorization-kubeconfig "${kubeconfig}" \
	--bind-address 127.0.0.1 --secure-port "${kcm_port}" \
	--leader-elect=false \
	--use-service-account-credentials=false \
	--service-account-private-key-file "${pki}/sa.key" \
	--root-ca-file "${pki}/ca.crt" \
	--profiling=false \
	--v 1
spawn kube-scheduler "${bin}/kube-scheduler" \
	--kubeconfig "${kubeconfig}" \
	--authentication-kubeconfig "${kubeconfig}" --authorization-kubeconfig "${kubeconfig}" \
	--bind-address 127.0.0.1 --secure-port "${sched_port}" \
	--leader-elect=false \
	--profiling=false \
	--v 1

# kwok's exec and log rules. pods/exec runs the requested command on this
# host, so it is limited to containers named "exec-target" and runs in
# DIR/exec, as nobody (65534) when this script runs as root (kwok can only
# switch users then); harmless commands only (true, echo, or touch in DIR/exec
# to leave a mark a test can see).
# Logs of every container come from one CRI-format file whose single line is
# stamped far in the future, so a scan "since the restart" reads one line.
run_as=""
if [[ "$(id -u)" == 0 ]]; then
	run_as="
      securityContext:
        runAsUser: 65534
        runAsGroup: 65534"
fi
cat >"${dir}/kwok-debug.yaml" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: e2e-exec
spec:
  execs:
  - containers: [exec-target]
    local:
      workDir: ${dir}/exec${run_as}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: e2e-logs
spec:
  logs:
  - logsFile: ${dir}/pod.log
EOF
echo "2099-01-01T00:00:00.000000000Z stdout F e2e pod started" >"${dir}/pod.log"
chmod 755 "${dir}"
chmod 1777 "${dir}/exec"
chmod 644 "${dir}/pod.log"

log "kwok (node kwok-node-0, kubelet on https://127.0.0.1:${kwok_port})"
spawn kwok "${bin}/kwok" \
	--kubeconfig "${kubeconfig}" \
	-c "${here}/kwok/stages.yaml" -c "${dir}/kwok-debug.yaml" \
	--manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
	--node-ip 127.0.0.1 --node-name kwok-node-0 --node-port "${kwok_port}" \
	--server-address "127.0.0.1:${kwok_port}" \
	--tls-cert-file "${pki}/kubelet.crt" --tls-private-key-file "${pki}/kubelet.key"

kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
kubectl apply -f "${here}/externalsecret-crd.yaml" >/dev/null

wait_for "node kwok-node-0 Ready" "${component_timeout_s}" \
	kubectl wait --for=condition=Ready node/kwok-node-0 --timeout=2s
wait_for "the default ServiceAccount" "${component_timeout_s}" \
	kubectl get serviceaccount default -n default
wait_for "the ExternalSecret CRD" "${component_timeout_s}" \
	kubectl wait --for=condition=Established crd/externalsecrets.external-secrets.io --timeout=2s

cat >"${dir}/env" <<EOF
export ROTARY_E2E_KUBECONFIG=${kubeconfig}
export ROTARY_E2E_CLUSTER=${dir}
export ROTARY_E2E_EXEC_DIR=${dir}/exec
export ROTARY_E2E_K8S_VERSION=${k8s_version}
EOF
started_ok=true
log "ready in ${SECONDS}s: source ${dir}/env; stop with: bash ${here}/stop.sh ${dir}"
