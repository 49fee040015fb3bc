package kubesim

import (
	"context"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// FailJobAnnotation on a Job's pod template makes the sim fail that Job; the
// annotation's value is the Failed condition's message (empty: the real
// controller's backoff-limit message).
const FailJobAnnotation = "kubesim.rotary.aivo.io/fail"

// The Job controller's vocabulary and API-server defaults the sim follows.
const (
	jobMessageBackoff     = "Job has reached the specified backoff limit"
	jobMessageCompletions = "Reached expected number of succeeded pods"
	defaultBackoffLimit   = 6 // spec.backoffLimit when unset
	defaultCompletions    = 1 // spec.completions when unset
)

// jobFate is what the sim does with a Job, decided when the Job starts.
type jobFate struct {
	fail    bool
	hang    bool
	message string // Failed condition message when fail
}

// FailNextJob makes the next Job ns/name that starts fail: condition
// FailureTarget and then Failed, reason BackoffLimitExceeded.
func (s *Sim) FailNextJob(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNextJob[objKey{ns, name}] = jobMessageBackoff
}

// HangNextJob makes the next Job ns/name that starts stay running (one active
// pod) forever.
func (s *Sim) HangNextJob(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangNextJob[objKey{ns, name}] = true
}

// NewJob returns a minimal valid Job (one container, restartPolicy Never,
// backoffLimit 0) carrying labels on the Job and on its pod template.
func NewJob(ns, name string, labels map[string]string) *batchv1.Job {
	tpl := make(map[string]string, len(labels))
	for k, v := range labels {
		tpl[k] = v
	}
	var backoff int32
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tpl},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "job", Image: "example.invalid/job:1"}},
				},
			},
		},
	}
}

func (s *Sim) onJob(ctx context.Context, ev watch.Event) {
	job, ok := ev.Object.(*batchv1.Job)
	if !ok {
		return
	}
	switch ev.Type {
	case watch.Deleted:
		s.mu.Lock()
		delete(s.jobFates, objKey{job.Namespace, job.Name})
		s.mu.Unlock()
	case watch.Added, watch.Modified:
		if err := s.reconcileJob(ctx, job.Namespace, job.Name); err != nil {
			s.log.WarnContext(ctx, "kubesim: job reconcile failed", "job", job.Namespace+"/"+job.Name, "err", err)
		}
	}
}

// reconcileJob advances a Job one step of started → outcome decided
// (SuccessCriteriaMet / FailureTarget) → finished (Complete / Failed), reading
// the current object. Each write's event brings the sim back for the next
// step; a finished, suspended or hung Job is left alone.
func (s *Sim) reconcileJob(ctx context.Context, ns, name string) error {
	job, err := s.cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if hasJobCondition(job, batchv1.JobComplete) || hasJobCondition(job, batchv1.JobFailed) ||
		(job.Spec.Suspend != nil && *job.Spec.Suspend) {
		return nil
	}
	now := metav1.NewTime(s.now())
	fate := s.jobFate(job)
	st := *job.Status.DeepCopy()
	switch {
	case st.StartTime == nil:
		st.StartTime = &now
		st.Active = 1
		st.Ready = ptr(int32(1))
	case fate.hang:
		return nil
	case fate.fail && !hasJobCondition(job, batchv1.JobFailureTarget):
		backoff := int32(defaultBackoffLimit)
		if job.Spec.BackoffLimit != nil {
			backoff = *job.Spec.BackoffLimit
		}
		st.Active, st.Ready, st.Failed = 0, ptr(int32(0)), backoff+1
		st.Conditions = append(st.Conditions, jobCondition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, fate.message, now))
	case fate.fail:
		st.Conditions = append(st.Conditions, jobCondition(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, fate.message, now))
	case !hasJobCondition(job, batchv1.JobSuccessCriteriaMet):
		completions := int32(defaultCompletions)
		if job.Spec.Completions != nil {
			completions = *job.Spec.Completions
		}
		st.Active, st.Ready, st.Succeeded = 0, ptr(int32(0)), completions
		st.Conditions = append(st.Conditions, jobCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, jobMessageCompletions, now))
	default:
		st.CompletionTime = &now
		st.Conditions = append(st.Conditions, jobCondition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, jobMessageCompletions, now))
	}
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": st}})
	if err != nil {
		return err
	}
	if _, err := s.cs.BatchV1().Jobs(ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}, "status"); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	s.log.DebugContext(ctx, "kubesim: job status", "job", ns+"/"+name,
		"active", st.Active, "succeeded", st.Succeeded, "failed", st.Failed, "conditions", len(st.Conditions))
	return nil
}

// jobFate returns the Job's fate, deciding it (and consuming FailNextJob /
// HangNextJob) when the Job has not started yet. A Job that started before
// the sim saw it follows its annotation only.
func (s *Sim) jobFate(job *batchv1.Job) jobFate {
	k := objKey{job.Namespace, job.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.jobFates[k]; ok { // cleared when the Job is deleted
		return f
	}
	var f jobFate
	msg, annotated := job.Spec.Template.Annotations[FailJobAnnotation]
	switch {
	case annotated:
		f = jobFate{fail: true, message: msg}
		if msg == "" {
			f.message = jobMessageBackoff
		}
	case job.Status.StartTime != nil:
		// Started before the sim saw it: nothing to consume.
	case s.failNextJob[k] != "":
		f = jobFate{fail: true, message: s.failNextJob[k]}
		delete(s.failNextJob, k)
	case s.hangNextJob[k]:
		f = jobFate{hang: true}
		delete(s.hangNextJob, k)
	}
	s.jobFates[k] = f
	return f
}

func hasJobCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func jobCondition(t batchv1.JobConditionType, reason, msg string, now metav1.Time) batchv1.JobCondition {
	return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
}

func ptr[T any](v T) *T { return &v }
