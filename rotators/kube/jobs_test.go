package kube_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

const jobName = "reencrypt-r-7kq2m9xa"

func reencryptJob(request string) *batchv1.Job {
	labels := map[string]string{"app": "reencrypt"}
	if request != "" {
		labels[kube.RequestLabel] = request
	}
	return kubesim.NewJob("", jobName, labels)
}

func jobCreates(actions []k8stesting.Action) int {
	var n int
	for _, a := range actions {
		if a.GetResource().Resource == "jobs" && a.GetVerb() == "create" {
			n++
		}
	}
	return n
}

func TestCreateJob(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false)
	job := reencryptJob(reqID)
	orig := job.DeepCopy()
	if err := e.kc.CreateJob(ctx, ns, job); err != nil {
		t.Fatal(err)
	}
	got, err := e.cs.BatchV1().Jobs(ns).Get(ctx, jobName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[kube.RequestLabel] != reqID || got.Namespace != ns {
		t.Errorf("created job labels %v namespace %q", got.Labels, got.Namespace)
	}
	if job.Namespace != orig.Namespace || len(job.Labels) != len(orig.Labels) {
		t.Error("CreateJob modified the caller's job")
	}

	// The repeated step: same name, same request → success, nothing new.
	if err := e.kc.CreateJob(ctx, ns, reencryptJob(reqID)); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	list, err := e.cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("%d jobs, %v; want 1", len(list.Items), err)
	}
}

func TestCreateJobRefusals(t *testing.T) {
	foreign := reencryptJob("R-OTHER")
	foreign.Namespace = ns
	unlabelled := reencryptJob("")
	unlabelled.Namespace = ns
	noName := reencryptJob(reqID)
	noName.Name, noName.GenerateName = "", "reencrypt-"
	otherNS := reencryptJob(reqID)
	otherNS.Namespace = "elsewhere"
	tests := []struct {
		name     string
		existing *batchv1.Job
		job      *batchv1.Job
		wantIs   error
		wantErr  string
		creates  int // create calls expected
	}{
		{name: "job of another request", existing: foreign, job: reencryptJob(reqID), wantIs: kube.ErrForeignObject, wantErr: `"R-OTHER"`, creates: 1},
		{name: "existing job without request label", existing: unlabelled, job: reencryptJob(reqID), wantIs: kube.ErrForeignObject, creates: 1},
		{name: "no request label", job: reencryptJob(""), wantErr: "empty request ID"},
		{name: "generateName only", job: noName, wantErr: "fixed name"},
		{name: "namespace mismatch", job: otherNS, wantErr: `namespace is "elsewhere"`},
		{name: "nil job", wantErr: "nil job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if tt.existing != nil {
				objs = append(objs, tt.existing)
			}
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, objs...)
			err := e.kc.CreateJob(context.Background(), ns, tt.job)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if n := jobCreates(e.cs.Actions()); n != tt.creates {
				t.Errorf("%d create calls, want %d", n, tt.creates)
			}
			if tt.existing != nil {
				j, err := e.cs.BatchV1().Jobs(ns).Get(context.Background(), jobName, metav1.GetOptions{})
				if err != nil || j.Labels[kube.RequestLabel] != tt.existing.Labels[kube.RequestLabel] {
					t.Errorf("existing job changed: %v %v", j, err)
				}
			}
		})
	}
}

// waitJobSimLate creates the Job, starts WaitJob and starts the sim only after
// WaitJob has reported its first status (so it has read the Job and its watch
// is open): every later state then arrives as a watch event or poll, in order.
func waitJobSimLate(t *testing.T, e *env) ([]string, error) {
	t.Helper()
	if err := e.kc.CreateJob(context.Background(), ns, reencryptJob(reqID)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var msgs []string
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.kc.WaitJob(ctxTimeout(t, waitTimeout), ns, jobName, func(m string) {
			mu.Lock()
			defer mu.Unlock()
			if msgs = append(msgs, m); len(msgs) == 1 {
				close(first)
			}
		})
	}()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("WaitJob returned before reporting: %v", err)
	}
	e.start(t)
	err := <-done
	mu.Lock()
	defer mu.Unlock()
	return msgs, err
}

func TestWaitJobReportsProgressInOrder(t *testing.T) {
	tests := []struct {
		name  string
		watch bool // false: the watch is refused and WaitJob polls
	}{
		{name: "watch", watch: true},
		{name: "poll fallback", watch: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{PollInterval: time.Millisecond}, false)
			var watchCalls int
			var mu sync.Mutex
			if !tt.watch {
				e.cs.PrependWatchReactor("jobs", func(a k8stesting.Action) (bool, watch.Interface, error) {
					if a.GetNamespace() != ns {
						return false, nil, nil // the sim's all-namespace watch
					}
					mu.Lock()
					watchCalls++
					mu.Unlock()
					return true, nil, errors.New("watch refused")
				})
			}
			msgs, err := waitJobSimLate(t, e)
			if err != nil {
				t.Fatal(err)
			}
			last := "active 0, succeeded 1, failed 0 (complete)"
			if msgs[0] != "active 0, succeeded 0, failed 0" || msgs[len(msgs)-1] != last {
				t.Errorf("messages %q: want first %q and last %q", msgs, "active 0, succeeded 0, failed 0", last)
			}
			if tt.watch {
				// With a watch every state is seen.
				want := []string{
					"active 0, succeeded 0, failed 0",
					"active 1, succeeded 0, failed 0",
					"active 0, succeeded 1, failed 0 (succeeded; waiting for its pods to terminate)",
					last,
				}
				if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
					t.Errorf("messages\n got %q\nwant %q", msgs, want)
				}
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if watchCalls == 0 {
				t.Error("WaitJob never tried to watch")
			}
		})
	}
}

func TestWaitJob(t *testing.T) {
	longMsg := strings.Repeat("y", 5000)
	tests := []struct {
		name      string
		arrange   func(*env)
		failMsg   *string // FailJobAnnotation value
		timeout   time.Duration
		wantErr   []string
		notInErr  []string
		wantFail  bool // errors.Is ErrJobFailed
		wantCtxTO bool
	}{
		{name: "completes", timeout: waitTimeout},
		{
			name: "annotated failure carries reason and message", failMsg: ptr("re-encryption of 3 rows failed"), timeout: waitTimeout,
			wantErr:  []string{ns + "/" + jobName, "job failed", "reason BackoffLimitExceeded", "re-encryption of 3 rows failed", "failed 1"},
			wantFail: true,
		},
		{
			name: "FailNextJob", arrange: func(e *env) { e.sim.FailNextJob(ns, jobName) }, timeout: waitTimeout,
			wantErr: []string{"reason BackoffLimitExceeded", "Job has reached the specified backoff limit"}, wantFail: true,
		},
		{
			name: "long failure message is capped", failMsg: &longMsg, timeout: waitTimeout,
			wantErr: []string{"reason BackoffLimitExceeded", "…"}, notInErr: []string{longMsg[:400]}, wantFail: true,
		},
		{
			name: "hangs: times out with the last progress", arrange: func(e *env) { e.sim.HangNextJob(ns, jobName) }, timeout: expireTimeout,
			wantErr: []string{ns + "/" + jobName, "last status: active 1, succeeded 0, failed 0"}, wantCtxTO: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{PollInterval: time.Millisecond}, true)
			if tt.arrange != nil {
				tt.arrange(e)
			}
			job := reencryptJob(reqID)
			if tt.failMsg != nil {
				job.Spec.Template.Annotations = map[string]string{kubesim.FailJobAnnotation: *tt.failMsg}
			}
			if err := e.kc.CreateJob(context.Background(), ns, job); err != nil {
				t.Fatal(err)
			}
			e.flush(t)
			var last string
			err := e.kc.WaitJob(ctxTimeout(t, tt.timeout), ns, jobName, func(m string) { last = m })
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if last != "active 0, succeeded 1, failed 0 (complete)" {
					t.Errorf("last progress %q", last)
				}
				return
			}
			if err == nil {
				t.Fatal("want error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range tt.notInErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error contains %.20q…", s)
				}
			}
			if got := errors.Is(err, kube.ErrJobFailed); got != tt.wantFail {
				t.Errorf("errors.Is(err, ErrJobFailed) = %v, want %v", got, tt.wantFail)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.wantCtxTO {
				t.Errorf("errors.Is(err, DeadlineExceeded) = %v, want %v", got, tt.wantCtxTO)
			}
		})
	}
}

// TestWaitJobJudgesConditions covers controller states the sim passes through
// too quickly to wait on: the outcome is decided but pods still terminate.
func TestWaitJobJudgesConditions(t *testing.T) {
	cond := func(typ batchv1.JobConditionType, status corev1.ConditionStatus, reason string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: status, Reason: reason, Message: "msg of " + string(typ)}
	}
	tests := []struct {
		name      string
		status    batchv1.JobStatus
		suspend   bool
		wantErr   string // "" means success
		wantFail  bool
		wantCtxTO bool
	}{
		{name: "Complete", status: batchv1.JobStatus{Succeeded: 1, Conditions: []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "True", "CompletionsReached"), cond(batchv1.JobComplete, "True", "CompletionsReached")}}},
		{
			name: "Failed by deadline", status: batchv1.JobStatus{Failed: 2, Conditions: []batchv1.JobCondition{cond(batchv1.JobFailed, "True", batchv1.JobReasonDeadlineExceeded)}},
			wantErr: "job failed (active 0, succeeded 0, failed 2): reason DeadlineExceeded: msg of Failed", wantFail: true,
		},
		{
			name: "FailureTarget waits for Failed", status: batchv1.JobStatus{Active: 1, Failed: 1, Conditions: []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "True", batchv1.JobReasonPodFailurePolicy)}},
			wantErr: "last status: active 1, succeeded 0, failed 1 (failing: reason PodFailurePolicy: msg of FailureTarget; waiting for its pods to terminate)", wantCtxTO: true,
		},
		{
			name: "SuccessCriteriaMet waits for Complete", status: batchv1.JobStatus{Active: 1, Succeeded: 1, Conditions: []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "True", batchv1.JobReasonSuccessPolicy)}},
			wantErr: "last status: active 1, succeeded 1, failed 0 (succeeded; waiting for its pods to terminate)", wantCtxTO: true,
		},
		{
			name: "Failed=False is not a failure", status: batchv1.JobStatus{Active: 1, Conditions: []batchv1.JobCondition{cond(batchv1.JobFailed, "False", "")}},
			wantErr: "last status: active 1, succeeded 0, failed 0)", wantCtxTO: true,
		},
		{name: "suspended", suspend: true, wantErr: "(suspended)", wantCtxTO: true,
			status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{cond(batchv1.JobSuspended, "True", "JobSuspended")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := reencryptJob(reqID)
			job.Namespace, job.Status, job.Spec.Suspend = ns, tt.status, &tt.suspend
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, job) // no sim: the status stays
			timeout := waitTimeout
			if tt.wantCtxTO {
				timeout = expireTimeout
			}
			err := e.kc.WaitJob(ctxTimeout(t, timeout), ns, jobName, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := errors.Is(err, kube.ErrJobFailed); got != tt.wantFail {
				t.Errorf("errors.Is(err, ErrJobFailed) = %v, want %v", got, tt.wantFail)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.wantCtxTO {
				t.Errorf("errors.Is(err, DeadlineExceeded) = %v, want %v", got, tt.wantCtxTO)
			}
		})
	}
}

func TestWaitJobMissingFailsAtOnce(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false)
	err := e.kc.WaitJob(ctxTimeout(t, waitTimeout), ns, "missing", nil)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/missing") {
		t.Errorf("err = %v, want NotFound naming the job", err)
	}
}

func ptr[T any](v T) *T { return &v }
