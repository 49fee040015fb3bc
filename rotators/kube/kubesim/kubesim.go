// Package kubesim is a small simulated control plane for client-go's fake
// clientsets. The fakes store objects but run no controllers, so on their own
// a restarted Deployment never rolls out, an ExternalSecret never syncs and a
// Job never runs. kubesim plays the four missing parts:
//
//   - the API server's generation bookkeeping: a reactor on the fake clientset
//     sets metadata.generation to 1 on create and bumps it, in the same write,
//     whenever an update or patch changes a Deployment's spec (as the real API
//     server does, so a waiter never sees a new template with an old
//     generation);
//   - the Deployment controller: when status.observedGeneration lags, it walks
//     the status to complete (optionally through the intermediate states
//     `kubectl rollout status` reports), or hangs or fails on request;
//   - External Secrets Operator: when an ExternalSecret's labels/annotations
//     change (e.g. the force-sync annotation) and ESO would refresh it (ESO's
//     shouldRefresh rules for refreshInterval/refreshPolicy), it sets
//     condition Ready and status.refreshTime from the injected clock, or
//     reports Ready=False on request; when a source was set for it
//     (SetExternalSecretSource) it also writes the source's data to the
//     ExternalSecret's target Secret, as ESO does;
//   - the Job controller: a created Job starts (startTime, one active pod),
//     then succeeds (SuccessCriteriaMet, then Complete) or, when its pod
//     template carries FailJobAnnotation or FailNextJob was called, fails
//     (FailureTarget, then Failed, reason BackoffLimitExceeded), or stays
//     running after HangNextJob.
//
// It is used by tests and by the local demo mode, so it must not import the
// standard "testing" package. It touches no Secret but an ExternalSecret's
// target, and that only when a source was set. ExecServer plays the
// pods/exec subresource over a loopback WebSocket. Everything is
// event-driven: Flush waits until every pending event, and every event the
// sim's own writes cause, has been processed — no sleeps needed.
package kubesim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aivo-platform/rotary/rotators/kube"
)

// fieldManager names the sim's writes in managed fields.
const fieldManager = "kubesim"

// Options configures a Sim. The zero value is usable.
type Options struct {
	// Now is the clock for status.refreshTime and condition times; nil means
	// time.Now. Inject one in tests.
	Now func() time.Time
	// Log receives debug records; nil discards them.
	Log *slog.Logger
	// Staged makes every rollout pass through two intermediate statuses
	// ("0 out of N new replicas have been updated", "0 of N updated replicas
	// are available") before completing, so progress messages occur.
	Staged bool
	// ExternalSecretsVersion is the ESO API version to simulate; empty means
	// kube.ExternalSecretsV1.
	ExternalSecretsVersion string
}

type objKey struct{ ns, name string }

// Sim is the simulated controller set. Create it with New before the code
// under test writes (so the generation reactor is in place), Start it, and
// cancel Start's context to stop it.
type Sim struct {
	cs     *fake.Clientset
	dyn    dynamic.Interface
	esGVR  schema.GroupVersionResource
	now    func() time.Time
	log    *slog.Logger
	staged bool

	flush chan chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	started  bool
	hangNext map[objKey]bool
	failNext map[objKey]bool
	stuck    map[objKey]int64 // generation whose rollout was hung/failed
	esErr    map[objKey]esError
	// esSources feed ExternalSecrets' target Secrets (SetExternalSecretSource).
	esSources map[objKey]ExternalSecretSource

	failNextJob map[objKey]string // message of the next Job's failure
	hangNextJob map[objKey]bool
	jobFates    map[objKey]jobFate // decided when a Job starts
}

type esError struct{ reason, message string }

// New prepares a Sim for cs (whose generation reactor it installs now) and
// dyn (any dynamic client; usually one from NewDynamicClient).
func New(cs *fake.Clientset, dyn dynamic.Interface, opts Options) *Sim {
	s := &Sim{
		cs:       cs,
		dyn:      dyn,
		now:      opts.Now,
		log:      opts.Log,
		staged:   opts.Staged,
		flush:    make(chan chan struct{}),
		done:     make(chan struct{}),
		hangNext: make(map[objKey]bool),
		failNext: make(map[objKey]bool),
		stuck:    make(map[objKey]int64),
		esErr:    make(map[objKey]esError),

		failNextJob: make(map[objKey]string),
		hangNextJob: make(map[objKey]bool),
		jobFates:    make(map[objKey]jobFate),
	}
	ver := opts.ExternalSecretsVersion
	if ver == "" {
		ver = kube.ExternalSecretsV1
	}
	s.esGVR = kube.ExternalSecretGVR(ver)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	cs.PrependReactor("*", "deployments", s.deploymentWriteReactor)
	return s
}

// Start opens watches on Deployments, ExternalSecrets and Jobs in all namespaces,
// reconciles the objects that already exist before returning (so their state
// is settled when Start returns), then keeps reconciling in a goroutine until
// ctx ends. Done is closed when that goroutine has exited.
func (s *Sim) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("kubesim: already started")
	}
	s.started = true
	s.mu.Unlock()

	deps, err := s.cs.AppsV1().Deployments("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("kubesim: watching deployments: %w", err)
	}
	ess, err := s.dyn.Resource(s.esGVR).Namespace("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		deps.Stop()
		return fmt.Errorf("kubesim: watching externalsecrets: %w", err)
	}
	jobs, err := s.cs.BatchV1().Jobs("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		deps.Stop()
		ess.Stop()
		return fmt.Errorf("kubesim: watching jobs: %w", err)
	}
	w := watches{deps: deps, ess: ess, jobs: jobs}
	// The fake delivers existing objects as Added events at watch time.
	s.drain(ctx, w)
	go s.loop(ctx, w)
	return nil
}

// watches are the sim's event sources.
type watches struct{ deps, ess, jobs watch.Interface }

// Done is closed once the goroutine started by Start has exited.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Flush returns once the sim has processed every event pending at the time of
// the call and every event its own writes caused (the fakes enqueue watch
// events synchronously, before a write returns). Use it to assert that
// something did NOT happen.
func (s *Sim) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case s.flush <- ack:
	case <-ctx.Done():
		return fmt.Errorf("kubesim: flush: %w", ctx.Err())
	case <-s.done:
		return errors.New("kubesim: flush: sim stopped")
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kubesim: flush: %w", ctx.Err())
	}
}

// HangNextRollout makes the next rollout of deployment ns/name stall after it
// is observed: status shows 0 of N replicas updated, forever. Later rollouts
// (a higher generation) proceed normally.
func (s *Sim) HangNextRollout(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangNext[objKey{ns, name}] = true
}

// FailNextRollout makes the next rollout of deployment ns/name fail the way a
// real one does: condition Progressing=False, reason ProgressDeadlineExceeded.
func (s *Sim) FailNextRollout(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[objKey{ns, name}] = true
}

// SetExternalSecretError makes every following sync of ExternalSecret ns/name
// report Ready=False with reason and message (refreshTime unchanged), as ESO
// does when the provider fails. An empty reason clears it.
func (s *Sim) SetExternalSecretError(ns, name, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := objKey{ns, name}
	if reason == "" {
		delete(s.esErr, k)
		return
	}
	s.esErr[k] = esError{reason: reason, message: message}
}

func (s *Sim) loop(ctx context.Context, w watches) {
	defer close(s.done)
	defer w.deps.Stop()
	defer w.ess.Stop()
	defer w.jobs.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.deps.ResultChan():
			if !ok {
				s.log.Warn("kubesim: deployment watch closed; sim stopping")
				return
			}
			s.onDeployment(ctx, ev)
		case ev, ok := <-w.ess.ResultChan():
			if !ok {
				s.log.Warn("kubesim: externalsecret watch closed; sim stopping")
				return
			}
			s.onExternalSecret(ctx, ev)
		case ev, ok := <-w.jobs.ResultChan():
			if !ok {
				s.log.Warn("kubesim: job watch closed; sim stopping")
				return
			}
			s.onJob(ctx, ev)
		case ack := <-s.flush:
			s.drain(ctx, w)
			close(ack)
		}
	}
}

// drain handles buffered events until none are left. Handling may write,
// which enqueues further events before the write returns, so when drain
// returns the simulated world is quiescent.
func (s *Sim) drain(ctx context.Context, w watches) {
	for {
		select {
		case ev, ok := <-w.deps.ResultChan():
			if !ok {
				return
			}
			s.onDeployment(ctx, ev)
		case ev, ok := <-w.ess.ResultChan():
			if !ok {
				return
			}
			s.onExternalSecret(ctx, ev)
		case ev, ok := <-w.jobs.ResultChan():
			if !ok {
				return
			}
			s.onJob(ctx, ev)
		default:
			return
		}
	}
}
