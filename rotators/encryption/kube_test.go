package encryption

import (
	"context"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

// simWorld is the real kube adapter over client-go's fake clientset, with
// kubesim playing the Deployment and Job controllers.
type simWorld struct {
	cs   *fake.Clientset
	sim  *kubesim.Sim
	kc   *kube.Client
	logs *syncBuffer
}

func newSimWorld(t *testing.T) *simWorld {
	t.Helper()
	labels := func(app string) map[string]string { return map[string]string{"app": app} }
	cs := fake.NewSimpleClientset(
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSec},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"ENCRYPTION_KEY": []byte(testOldKey), "DATABASE_URL": []byte(testOther)},
		},
		kubesim.NewDeployment(testNS, "ai-orchestrator", 2, labels("ai-orchestrator")),
		kubesim.NewDeployment(testNS, "ai-worker", 1, labels("ai-worker")),
	)
	dyn := kubesim.NewDynamicClient()
	now := func() time.Time { return testNow }
	w := &simWorld{cs: cs, logs: &syncBuffer{}}
	w.sim = kubesim.New(cs, dyn, kubesim.Options{Now: now, Staged: true})
	w.kc = kube.New(cs, dyn, kube.Options{
		Now: now, PollInterval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.sim.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.sim.Done() })
	return w
}

func (w *simWorld) secretData(t *testing.T, name string) map[string]string {
	t.Helper()
	s, err := w.cs.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func (w *simWorld) jobs(t *testing.T) []batchv1.Job {
	t.Helper()
	l, err := w.cs.BatchV1().Jobs(testNS).List(context.Background(), metav1.ListOptions{LabelSelector: kube.RequestLabel + "=" + testReqID})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func jobDone(j batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// The whole rotation through the real kube.Client and the real executor:
// the Jobs' status, set by the simulated Job controller, drives the flow.
func TestWithKubeAdapter(t *testing.T) {
	podLabels := "      labels: {app.kubernetes.io/name: reencrypt}\n    spec:"
	failing := strings.Replace(reencryptJob, podLabels,
		"      labels: {app.kubernetes.io/name: reencrypt}\n      annotations: {"+kubesim.FailJobAnnotation+": 'reencrypt exited 3'}\n    spec:", 1)
	if failing == reencryptJob {
		t.Fatal("the template changed; update this test")
	}
	tests := []struct {
		name     string
		src      string
		arrange  func(w *simWorld)
		want     approvals.State
		wantJobs map[string]batchv1.JobConditionType
	}{
		{
			name: "jobs succeed",
			src:  targetYAML("verification_job: |\n" + indent(verifyJob)),
			want: approvals.StateSucceeded,
			wantJobs: map[string]batchv1.JobConditionType{
				testJobName: batchv1.JobComplete, "reencrypt-verify-r-abcd2345": batchv1.JobComplete,
			},
		},
		{
			name:     "migration job fails",
			src:      "migration_job: " + quoteYAML(failing) + "\n" + withoutJob(targetYAML()),
			want:     approvals.StateRolledBack,
			wantJobs: map[string]batchv1.JobConditionType{testJobName: batchv1.JobFailed},
		},
		{
			name:    "verification job fails",
			src:     targetYAML("verification_job: |\n" + indent(verifyJob)),
			arrange: func(w *simWorld) { w.sim.FailNextJob(testNS, "reencrypt-verify-r-abcd2345") },
			want:    approvals.StateRolledBack,
			wantJobs: map[string]batchv1.JobConditionType{
				testJobName: batchv1.JobComplete, "reencrypt-verify-r-abcd2345": batchv1.JobFailed,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := newSimWorld(t)
			if tt.arrange != nil {
				tt.arrange(sw)
			}
			w := newExecWorld(t, sw.kc, tt.src)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w.runExecutor(ctx, cancel)

			req := w.reqs.get()
			t.Logf("outcome: %s", req.Outcome)
			if req.State != tt.want {
				t.Fatalf("request %s (%s), want %s", req.State, req.Outcome, tt.want)
			}
			got := map[string]batchv1.JobConditionType{}
			for _, j := range sw.jobs(t) {
				switch {
				case jobDone(j, batchv1.JobComplete):
					got[j.Name] = batchv1.JobComplete
				case jobDone(j, batchv1.JobFailed):
					got[j.Name] = batchv1.JobFailed
				default:
					got[j.Name] = "unfinished"
				}
				if j.Spec.Template.Labels[kube.RequestLabel] != testReqID {
					t.Errorf("job %s pods are not labelled with the request", j.Name)
				}
			}
			if !maps.Equal(got, tt.wantJobs) {
				t.Errorf("jobs = %v, want %v", got, tt.wantJobs)
			}
			backup := sw.secretData(t, "app-encryption-backup-r-abcd2345")
			if !maps.Equal(backup, original()) {
				t.Error("the backup does not hold the original data")
			}
			data := sw.secretData(t, testSec)
			keys := w.rand.keys()
			if len(keys) != 1 {
				t.Fatalf("%d keys made", len(keys))
			}
			if tt.want == approvals.StateSucceeded {
				if want := map[string]string{"ENCRYPTION_KEY": keys[0], "DATABASE_URL": testOther}; !maps.Equal(data, want) {
					t.Errorf("Secret keys = %v, want the new ENCRYPTION_KEY and DATABASE_URL", slices.Sorted(maps.Keys(data)))
				}
				if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(data["ENCRYPTION_KEY"]) {
					t.Error("the new key is not 64 hex digits")
				}
			} else {
				if !maps.Equal(data, original()) {
					t.Errorf("Secret keys = %v, want exactly the original data back", slices.Sorted(maps.Keys(data)))
				}
				if c := sw.secretData(t, "app-encryption-backup-r-abcd2345-newkey"); c["NEW_ENCRYPTION_KEY"] != keys[0] {
					t.Error("the new key was not kept before restoring")
				}
				if !strings.Contains(req.Outcome, "Job aivo-prod/") || !strings.Contains(req.Outcome, "failed") {
					t.Errorf("outcome = %q, want the failed Job named", req.Outcome)
				}
			}
			dep, err := sw.cs.AppsV1().Deployments(testNS).Get(context.Background(), "ai-orchestrator", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if dep.Generation != 3 {
				t.Errorf("ai-orchestrator generation = %d, want 3 (two restarts)", dep.Generation)
			}
			rotatorstest.AssertNoLeak(t, append(keys, testOldKey, testOther), w.journal.all.String(), w.logs.String(), sw.logs.String(), req.Outcome)
		})
	}
}

// withoutJob drops the migration_job block from a targetYAML() text.
func withoutJob(src string) string {
	i := strings.Index(src, "migration_job: |")
	return src[:i]
}
