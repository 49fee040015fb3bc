package kubesim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// jobStep is one observed Job status, reduced to what the tests compare.
type jobStep struct {
	active, succeeded, failed int32
	conditions                string // "Type=Reason:Message,..." in order
	started, completed        bool
}

func (s jobStep) String() string {
	return fmt.Sprintf("{a%d s%d f%d [%s] started=%v completed=%v}", s.active, s.succeeded, s.failed, s.conditions, s.started, s.completed)
}

func stepOf(j *batchv1.Job) jobStep {
	var conds []string
	for _, c := range j.Status.Conditions {
		if c.Status != "True" {
			continue
		}
		conds = append(conds, string(c.Type)+"="+c.Reason+":"+c.Message)
	}
	return jobStep{
		active: j.Status.Active, succeeded: j.Status.Succeeded, failed: j.Status.Failed,
		conditions: strings.Join(conds, ","),
		started:    j.Status.StartTime != nil && j.Status.StartTime.Time.Equal(t0),
		completed:  j.Status.CompletionTime != nil && j.Status.CompletionTime.Time.Equal(t0),
	}
}

func TestJobLifecycle(t *testing.T) {
	const (
		successCond  = "SuccessCriteriaMet=CompletionsReached:Reached expected number of succeeded pods"
		completeCond = "Complete=CompletionsReached:Reached expected number of succeeded pods"
		backoffMsg   = "Job has reached the specified backoff limit"
	)
	created := jobStep{}
	started := jobStep{active: 1, started: true}
	tests := []struct {
		name     string
		annotate *string // FailJobAnnotation value on the pod template
		arrange  func(*kubesim.Sim)
		suspend  bool
		want     []jobStep // every status a watcher sees, in order
	}{
		{
			name: "completes",
			want: []jobStep{created, started,
				{succeeded: 1, conditions: successCond, started: true},
				{succeeded: 1, conditions: successCond + "," + completeCond, started: true, completed: true}},
		},
		{
			name:     "annotation fails it with its message",
			annotate: ptr("migration exited 3"),
			want: []jobStep{created, started,
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:migration exited 3", started: true},
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:migration exited 3,Failed=BackoffLimitExceeded:migration exited 3", started: true}},
		},
		{
			name:     "empty annotation fails with the controller's message",
			annotate: ptr(""),
			want: []jobStep{created, started,
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:" + backoffMsg, started: true},
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:" + backoffMsg + ",Failed=BackoffLimitExceeded:" + backoffMsg, started: true}},
		},
		{
			name:    "FailNextJob",
			arrange: func(s *kubesim.Sim) { s.FailNextJob(ns, "reencrypt") },
			want: []jobStep{created, started,
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:" + backoffMsg, started: true},
				{failed: 1, conditions: "FailureTarget=BackoffLimitExceeded:" + backoffMsg + ",Failed=BackoffLimitExceeded:" + backoffMsg, started: true}},
		},
		{
			name:    "FailNextJob of another job does not apply",
			arrange: func(s *kubesim.Sim) { s.FailNextJob(ns, "other") },
			want: []jobStep{created, started,
				{succeeded: 1, conditions: successCond, started: true},
				{succeeded: 1, conditions: successCond + "," + completeCond, started: true, completed: true}},
		},
		{
			name:    "HangNextJob stays running",
			arrange: func(s *kubesim.Sim) { s.HangNextJob(ns, "reencrypt") },
			want:    []jobStep{created, started},
		},
		{
			name:    "suspended job is left alone",
			suspend: true,
			want:    []jobStep{created},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, kubesim.Options{}, true)
			if tt.arrange != nil {
				tt.arrange(w.sim)
			}
			ctx := context.Background()
			watcher, err := w.cs.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Stop()
			job := kubesim.NewJob(ns, "reencrypt", map[string]string{"app": "reencrypt"})
			if tt.annotate != nil {
				job.Spec.Template.Annotations = map[string]string{kubesim.FailJobAnnotation: *tt.annotate}
			}
			job.Spec.Suspend = &tt.suspend
			if _, err := w.cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			w.flush(t)
			var got []jobStep
			for len(watcher.ResultChan()) > 0 {
				ev := <-watcher.ResultChan()
				if ev.Type == watch.Added || ev.Type == watch.Modified {
					got = append(got, stepOf(ev.Object.(*batchv1.Job)))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("statuses\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestJobNextFailureAndHangApplyOnce(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(*kubesim.Sim)
		first   string // the first Job's last condition type ("" = none)
	}{
		{name: "fail", arrange: func(s *kubesim.Sim) { s.FailNextJob(ns, "reencrypt") }, first: "Failed"},
		{name: "hang", arrange: func(s *kubesim.Sim) { s.HangNextJob(ns, "reencrypt") }, first: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, kubesim.Options{}, true)
			tt.arrange(w.sim)
			ctx := context.Background()
			jobs := w.cs.BatchV1().Jobs(ns)
			lastCond := func() string {
				j, err := jobs.Get(ctx, "reencrypt", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if n := len(j.Status.Conditions); n > 0 {
					return string(j.Status.Conditions[n-1].Type)
				}
				return ""
			}
			for i, want := range []string{tt.first, "Complete"} {
				if i > 0 {
					if err := jobs.Delete(ctx, "reencrypt", metav1.DeleteOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := jobs.Create(ctx, kubesim.NewJob(ns, "reencrypt", nil), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				w.flush(t)
				if got := lastCond(); got != want {
					t.Errorf("job %d: last condition %q, want %q", i+1, got, want)
				}
			}
		})
	}
}

func TestSeededFinishedJobIsLeftAlone(t *testing.T) {
	done := kubesim.NewJob(ns, "old", nil)
	done.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: "True"}}
	done.Status.Succeeded = 1
	w := newWorld(t, kubesim.Options{}, false, done)
	w.cs.ClearActions()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-w.sim.Done() })
	if err := w.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.flush(t)
	for _, a := range w.cs.Actions() {
		if a.GetVerb() == "patch" {
			t.Errorf("sim wrote a finished job: %v", a)
		}
	}
}

func ptr[T any](v T) *T { return &v }
