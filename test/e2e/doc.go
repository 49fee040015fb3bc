// Package e2e is rotary's end-to-end suite against a real Kubernetes control
// plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler,
// with kwok playing the node and its kubelet (test/cluster starts them).
//
// It owns only tests. Each scenario builds nothing into rotary: it runs the
// real rotary binary (built once by TestMain) as a subprocess, configured
// through its YAML file and environment against the cluster — with a
// ServiceAccount token bound to the Role that deploy/rbac.yaml ships, so the
// least-privilege RBAC is exercised too — the Secret Manager fake over real
// gRPC (gsmfake), the Slack Web API fake (slackfake), the provider fakes
// (apikeytest) and, when test/services.sh exported them, real PostgreSQL and
// Redis. The test drives rotary as Slack does (signed slash commands and
// interactions) and plays External Secrets Operator itself (esoStandIn).
//
// Rules:
//   - Without ROTARY_E2E_KUBECONFIG (set by test/cluster/ci.sh) every test
//     skips with a message: a plain `go test ./...` needs no cluster.
//   - Each scenario has its own namespace, fakes, ESO stand-in and rotary
//     process, so scenarios run in parallel.
//   - Waits are watches or the fakes' own notifications; nothing sleeps.
//   - Crash/resume kills rotary with SIGKILL, either through its fault
//     injection (ROTARY_FAULT_KILL_AFTER_STEP, after a forward or a rollback
//     step) or from the test while a rollout is visibly in progress or a
//     step waits for a person, and restarts it on the same bbolt file. The
//     journal is then read back with `rotary audit export` where a check
//     needs it (a rollback's steps each done once).
package e2e
