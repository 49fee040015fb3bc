package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// maxStatusMessage caps controller-written text (condition messages) that we
// copy into errors and Slack: ESO messages carry no secret values, but they
// can carry long provider error bodies.
const maxStatusMessage = 300

// waitSpec describes one wait on a single named object.
type waitSpec struct {
	what  string // "deployment ns/name": used in errors and logs
	name  string
	get   func(ctx context.Context) (runtime.Object, error)
	watch func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	// check judges one observed state: done, a human status line, or a
	// terminal error (no point waiting longer).
	check    func(obj runtime.Object) (done bool, msg string, err error)
	progress func(msg string)
}

// waitFor blocks until spec.check says done, returns a terminal error, or ctx
// ends. It watches the single object (field selector metadata.name, like
// `kubectl rollout status`) and falls back to polling at c.poll whenever the
// watch cannot be opened or is closed; it re-establishes the watch on the next
// poll tick. On ctx end it returns ctx's error wrapped with the last status
// message, so a timeout says what the object was still doing.
func (c *Client) waitFor(ctx context.Context, spec waitSpec) error {
	start := c.now()
	var last string
	observe := func(obj runtime.Object) (bool, error) {
		done, msg, err := spec.check(obj)
		msg = strings.TrimSpace(msg)
		if msg != "" && msg != last {
			last = msg
			if spec.progress != nil {
				spec.progress(msg)
			}
		}
		return done, err
	}
	timeout := func() error {
		if last == "" {
			return fmt.Errorf("kube: waiting for %s: %w", spec.what, ctx.Err())
		}
		return fmt.Errorf("kube: waiting for %s (last status: %s): %w", spec.what, last, ctx.Err())
	}

	var w watch.Interface
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	openWatch := func() {
		opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", spec.name).String()}
		nw, err := spec.watch(ctx, opts)
		if err != nil {
			c.log.DebugContext(ctx, "kube: watch unavailable, polling", "object", spec.what, "err", err)
			return
		}
		w = nw
	}

	ticker := time.NewTicker(c.poll)
	defer ticker.Stop()

	// Open the watch before the first read: every change after that read then
	// arrives as an event, so nothing between read and watch is missed.
	openWatch()
	reread, readFailed := true, false
	for {
		if reread {
			reread, readFailed = false, false
			obj, err := spec.get(ctx)
			switch {
			case ctx.Err() != nil:
				return timeout()
			case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
				// Waiting will not fix a missing object or missing RBAC.
				return fmt.Errorf("kube: waiting for %s: %w", spec.what, err)
			case err != nil:
				// Transient API trouble: retry on the next tick; the deadline
				// bounds it.
				readFailed = true
				c.log.WarnContext(ctx, "kube: read failed while waiting", "object", spec.what, "err", err)
			default:
				done, err := observe(obj)
				if err != nil {
					return fmt.Errorf("kube: waiting for %s: %w", spec.what, err)
				}
				if done {
					c.log.DebugContext(ctx, "kube: wait done", "object", spec.what, "took", c.now().Sub(start))
					return nil
				}
			}
		}

		var events <-chan watch.Event
		if w != nil {
			events = w.ResultChan()
		}
		select {
		case <-ctx.Done():
			return timeout()
		case <-ticker.C:
			if w == nil {
				openWatch()
				reread = true
			}
			if readFailed {
				reread = true
			}
		case ev, ok := <-events:
			if !ok || ev.Type == watch.Error {
				// Server closed the watch (normal after a few minutes) or
				// reported it broken (e.g. 410 Gone): re-read now and poll
				// until the next tick reopens it.
				if ok {
					c.log.DebugContext(ctx, "kube: watch error event, polling", "object", spec.what)
				}
				w.Stop()
				w = nil
				reread = true
				continue
			}
			done, err := spec.handle(ev, observe)
			if err != nil {
				return err
			}
			if done {
				c.log.DebugContext(ctx, "kube: wait done", "object", spec.what, "took", c.now().Sub(start))
				return nil
			}
		}
	}
}

// handle judges one watch event for the waited-on object.
func (spec waitSpec) handle(ev watch.Event, observe func(runtime.Object) (bool, error)) (bool, error) {
	if ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted {
		return false, nil // Bookmark: nothing to judge.
	}
	acc, err := meta.Accessor(ev.Object)
	if err != nil || acc.GetName() != spec.name {
		// Fake clients (and some proxies) ignore the field selector.
		return false, nil
	}
	if ev.Type == watch.Deleted {
		return false, fmt.Errorf("kube: waiting for %s: object was deleted", spec.what)
	}
	done, err := observe(ev.Object)
	if err != nil {
		return false, fmt.Errorf("kube: waiting for %s: %w", spec.what, err)
	}
	return done, nil
}

// capMessage trims s to one line of at most maxStatusMessage runes.
func capMessage(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) > maxStatusMessage {
		return string(r[:maxStatusMessage]) + "…"
	}
	return s
}
