package kube

import (
	"context"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// ErrJobFailed reports a Job with condition Failed=True. The wrapping error
// carries the condition's reason and (capped) message.
var ErrJobFailed = errors.New("job failed")

// CreateJob creates job in ns. The Job must have a fixed name (GenerateName
// would make a repeated step start a second Job) and a RequestLabel: when a
// Job of that name already exists with the same RequestLabel value, the call
// is a repeat of an earlier step and succeeds without creating anything; with
// another value (or none) it fails with ErrForeignObject. job is not modified.
func (c *Client) CreateJob(ctx context.Context, ns string, job *batchv1.Job) error {
	if job == nil {
		return errors.New("kube: creating job: nil job")
	}
	what := "job " + ns + "/" + job.Name
	switch {
	case job.Name == "":
		return fmt.Errorf("kube: creating job in %s: the Job needs a fixed name, so a repeated step finds it", ns)
	case job.Namespace != "" && job.Namespace != ns:
		return fmt.Errorf("kube: creating %s: the Job's namespace is %q", what, job.Namespace)
	}
	req := job.Labels[RequestLabel]
	if err := checkRequestID(req); err != nil {
		return fmt.Errorf("kube: creating %s: label %s: %w", what, RequestLabel, err)
	}
	j := job.DeepCopy()
	j.Namespace = ns
	jobs := c.cs.BatchV1().Jobs(ns)
	_, err := jobs.Create(ctx, j, metav1.CreateOptions{FieldManager: userAgent})
	switch {
	case err == nil:
		c.log.InfoContext(ctx, "kube: job created", "job", ns+"/"+job.Name, "request", req)
		return nil
	case !apierrors.IsAlreadyExists(err):
		return fmt.Errorf("kube: creating %s: %w", what, err)
	}
	existing, err := jobs.Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: creating %s: it already exists and reading it failed: %w", what, err)
	}
	if got := existing.Labels[RequestLabel]; got != req {
		return fmt.Errorf("kube: creating %s: it already exists with %s=%q, want %q: %w", what, RequestLabel, got, req, ErrForeignObject)
	}
	c.log.InfoContext(ctx, "kube: job already exists for this request; not creating another", "job", ns+"/"+job.Name, "request", req)
	return nil
}

// WaitJob waits (watch, or poll as fallback, like WaitRollout) until Job
// ns/name has condition Complete=True (nil) or Failed=True (an error wrapping
// ErrJobFailed with the condition's reason and capped message). progress (may
// be nil) receives "active A, succeeded S, failed F" whenever that changes,
// with a note in parentheses for the conditions below. FailureTarget=True and
// SuccessCriteriaMet=True (Kubernetes 1.31+) mean the outcome is decided but
// the Job's pods are still terminating: WaitJob keeps waiting for Failed or
// Complete, so nothing that follows a Job runs beside its last pods. ctx
// carries the timeout; on expiry the error wraps ctx's error and carries the
// last status.
func (c *Client) WaitJob(ctx context.Context, ns, name string, progress func(string)) error {
	jobs := c.cs.BatchV1().Jobs(ns)
	return c.waitFor(ctx, waitSpec{
		what: "job " + ns + "/" + name,
		name: name,
		get: func(ctx context.Context) (runtime.Object, error) {
			return jobs.Get(ctx, name, metav1.GetOptions{})
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return jobs.Watch(ctx, opts)
		},
		check: func(obj runtime.Object) (bool, string, error) {
			j, ok := obj.(*batchv1.Job)
			if !ok {
				return false, "", fmt.Errorf("unexpected object %T", obj)
			}
			return jobStatus(j)
		},
		progress: progress,
	})
}

// jobStatus judges one observed Job and describes it.
func jobStatus(j *batchv1.Job) (bool, string, error) {
	counts := fmt.Sprintf("active %d, succeeded %d, failed %d", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
	if c := jobCondition(j, batchv1.JobFailed); c != nil {
		return false, counts + " (failed)", fmt.Errorf("%w (%s)%s", ErrJobFailed, counts, describeCondition(c))
	}
	if c := jobCondition(j, batchv1.JobComplete); c != nil {
		return true, counts + " (complete)", nil
	}
	if c := jobCondition(j, batchv1.JobFailureTarget); c != nil {
		return false, counts + " (failing" + describeCondition(c) + "; waiting for its pods to terminate)", nil
	}
	if c := jobCondition(j, batchv1.JobSuccessCriteriaMet); c != nil {
		return false, counts + " (succeeded; waiting for its pods to terminate)", nil
	}
	if c := jobCondition(j, batchv1.JobSuspended); c != nil {
		return false, counts + " (suspended)", nil
	}
	return false, counts, nil
}

// jobCondition returns the condition of type t when its status is True.
func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// describeCondition renders ": reason R: message" with controller text capped.
func describeCondition(c *batchv1.JobCondition) string {
	var s string
	if r := capMessage(c.Reason); r != "" {
		s += ": reason " + r
	}
	if m := capMessage(c.Message); m != "" {
		s += ": " + m
	}
	return s
}
