package encryption

import (
	"context"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators"
)

const (
	testReqID = "R-ABCD2345"
	testNS    = "aivo-prod"
	testSec   = "app-encryption"
	// testOldKey is the key in use before the rotation.
	testOldKey = "6f6c642d6b65792d4f4c444b45592d6f6c642d6b65792d4f4c444b45592d3031"
	// testOther is an unrelated key in the same Secret, which must survive.
	testOther = "postgres://app:S3cr3t-PW@db:5432/app"
)

// reencryptJob is a realistic migration Job template.
const reencryptJob = `
apiVersion: batch/v1
kind: Job
metadata:
  name: reencrypt
  labels: {app.kubernetes.io/name: reencrypt}
  annotations: {owner: platform}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 604800
  template:
    metadata:
      labels: {app.kubernetes.io/name: reencrypt}
    spec:
      restartPolicy: Never
      containers:
        - name: reencrypt
          image: registry.example.com/aivo/ai-orchestrator:stable
          command: [npm, run, reencrypt]
          envFrom: [{secretRef: {name: app-encryption}}]
          env: [{name: APP_ENV, value: "{env}"}]
`

// verifyJob is a verification Job template.
const verifyJob = `
apiVersion: batch/v1
kind: Job
metadata: {name: reencrypt-verify}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: verify
          image: registry.example.com/aivo/ai-orchestrator:stable
          command: [npm, run, reencrypt:verify]
          envFrom: [{secretRef: {name: app-encryption}}]
`

// indent indents a multi-line string for embedding as a YAML block scalar.
func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.Trim(s, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// targetYAML is the target's settings; extra lines are appended.
func targetYAML(extra ...string) string {
	src := `namespace: aivo-{env}
secret: app-encryption
deployments: [ai-orchestrator, ai-worker]
migration_job: |
` + indent(reencryptJob)
	for _, e := range extra {
		src += e + "\n"
	}
	return src
}

// fixture is one target wired to a fake cluster holding the Secret.
type fixture struct {
	t       *testing.T
	cluster *fakeCluster
	rand    *recordingRand
	rot     *Rotator
	spec    rotators.Spec
	plan    rotators.Plan
}

func newFixture(t *testing.T, src string) *fixture {
	t.Helper()
	f := &fixture{t: t, cluster: newFakeCluster(), rand: &recordingRand{}}
	f.cluster.seed(testNS, testSec, map[string]string{"ENCRYPTION_KEY": testOldKey, "DATABASE_URL": testOther})
	f.cluster.watchKey = DefaultNewKeyName
	f.spec = rotators.Spec{RequestID: testReqID, Target: "encryption", Env: "prod"}
	var cfg Config
	if err := yamlDecode(src)(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New(f.spec.Target, cfg, Clients{Cluster: f.cluster, Rand: f.rand})
	if len(problems) > 0 {
		t.Fatalf("config problems: %v\n%s", problems, src)
	}
	f.rot = rot
	f.plan = rot.Plan(f.spec)
	return f
}

// step returns the plan's forward or rollback step called name.
func (f *fixture) step(name string) rotators.Step {
	f.t.Helper()
	for _, s := range append(append([]rotators.Step{}, f.plan.Steps...), f.plan.Rollback...) {
		if s.Name == name {
			return s
		}
	}
	f.t.Fatalf("no step %q", name)
	return rotators.Step{}
}

func (f *fixture) run(run *fakeRun, name string) error {
	return f.step(name).Run(context.Background(), run)
}

// mustRun runs the named steps in order and fails on an error.
func (f *fixture) mustRun(run *fakeRun, names ...string) {
	f.t.Helper()
	for _, n := range names {
		if err := f.run(run, n); err != nil {
			f.t.Fatalf("step %s: %v", n, err)
		}
	}
}

// secretsToHide are every key value a test may have made or held.
func (f *fixture) secretsToHide() []string {
	return append(f.rand.keys(), testOldKey, testOther)
}

func forward() []string {
	return []string{StepBackup, StepNewKey, StepDualKeys, StepRestartDual, StepMigrate, StepVerify, StepRemoveOldKey, StepRestartFinal}
}

func rollbackSteps() []string { return []string{StepRestoreSecret, StepRollbackRestart} }

// original is the seeded Secret's data.
func original() map[string]string {
	return map[string]string{"ENCRYPTION_KEY": testOldKey, "DATABASE_URL": testOther}
}
