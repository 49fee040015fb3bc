package jwt

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

// Every step run a second time, in the same process and after a restart
// (memory-only secrets lost), changes nothing: no Secret, Deployment,
// ExternalSecret or Secret Manager write, no second exec, no second key.
func TestEveryStepIsIdempotent(t *testing.T) {
	for _, backend := range backends {
		for _, emergency := range []bool{false, true} {
			name := backend
			if emergency {
				name += "/emergency"
			}
			t.Run(name, func(t *testing.T) {
				w := newWorld(t, backend)
				f := w.rotation(t, testReqID, emergency)
				run := f.newRun()
				again := func(phase string, steps []string) {
					t.Helper()
					before, keys := w.writes(), w.keys.count()
					f.mustRun(t, run, steps...)
					r2 := f.restarted(run)
					f.mustRun(t, r2, steps...)
					run = r2
					if after := w.writes(); !slices.Equal(before, after) || w.keys.count() != keys {
						t.Errorf("%s run again wrote:\nbefore %v\nafter  %v\n(keys made %d → %d)", phase, before, after, keys, w.keys.count())
					}
				}

				f.mustRun(t, run, f.forward()...)
				again("forward steps", f.forward())
				if !emergency {
					run.SetNow(run.Now().Add(DefaultGracePeriod))
					f.mustRun(t, run, f.followUp()...)
					again("follow-up steps", f.followUp())
				}
				rb, rr := f.rollbackRequest(t, run)
				rr.SetNow(rr.Now().Add(time.Hour))
				for _, s := range rb.Rollback {
					if err := s.Run(ctxTimeout(t), rr); err != nil {
						t.Fatalf("rollback step %s: %v", s.Name, err)
					}
				}
				before := w.writes()
				for _, r := range []*runType{rr, f.restarted(rr)} {
					for _, s := range rb.Rollback {
						if err := s.Run(ctxTimeout(t), r); err != nil {
							t.Fatalf("rollback step %s again: %v", s.Name, err)
						}
					}
				}
				if after := w.writes(); !slices.Equal(before, after) {
					t.Errorf("rollback run again wrote %v", after[len(before):])
				}
			})
		}
	}
}

// The private key held in memory is lost in a restart between generate
// and update: update asks for generate again (which makes a new key), and
// nothing was written meanwhile. Lost after the write, nothing is made
// again: the store already holds the journaled kid.
func TestPrivateKeyLost(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend+"/before the write", func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			f.mustRun(t, run, StepBackup, StepGenerate)
			firstKID := run.Fact(factNewKID)
			before := w.writes()
			run = f.restarted(run)
			err := f.run(t, run, StepUpdate)
			var lost *rotators.SecretLostError
			if !errors.As(err, &lost) || lost.From != StepGenerate {
				t.Fatalf("update after the restart: err = %v, want SecretLostError{From: %s}", err, StepGenerate)
			}
			if after := w.writes(); !slices.Equal(before, after) {
				t.Errorf("the lost-key update wrote %v", after[len(before):])
			}
			f.mustRun(t, run, f.upTo(StepUpdate)[1:]...)
			if kid := run.Fact(factNewKID); kid == firstKID || w.keys.count() != 2 {
				t.Errorf("kid %s (first %s), keys made %d: want a second, different key", kid, firstKID, w.keys.count())
			}
			f.mustRun(t, run, f.upTo(StepVerify)[len(f.upTo(StepUpdate)):]...)
			if got := w.keysData(t)[DefaultKeyID]; got != run.Fact(factNewKID) {
				t.Errorf("Secret kid %s, want the second key's %s", got, run.Fact(factNewKID))
			}
		})
		t.Run(backend+"/after the write", func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			f.mustRun(t, run, f.upTo(StepUpdate)...)
			run = f.restarted(run)
			f.mustRun(t, run, f.upTo(StepVerify)[1:]...)
			if w.keys.count() != 1 || !strings.Contains(run.ProgressText(), "is already written; not generating another") {
				t.Errorf("keys made %d, progress %q: want the written key kept", w.keys.count(), run.ProgressText())
			}
		})
	}
	// Secret Manager took the version but its answer was lost with the
	// process: the version is recognised by its kid, not added again.
	t.Run("secret_manager/answer lost", func(t *testing.T) {
		w := newWorld(t, BackendSecretManager)
		f := w.rotation(t, testReqID, false)
		run := f.newRun()
		f.mustRun(t, run, StepBackup, StepGenerate)
		crash := errors.New("crash")
		run.OnRecord = func(key, _ string) error {
			if key == factNewVersion {
				return crash
			}
			return nil
		}
		if err := f.run(t, run, StepUpdate); !errors.Is(err, crash) {
			t.Fatalf("update err = %v, want the crash", err)
		}
		run = f.restarted(run)
		f.mustRun(t, run, StepGenerate, StepUpdate, StepSync, StepVerify)
		vs := w.gsmSrv.Versions(testGSMSecret)
		if len(vs) != 2 || run.Fact(factNewVersion) != vs[1].Name || w.keys.count() != 1 {
			t.Errorf("%d versions, new_version %q, keys made %d: want the lost add adopted", len(vs), run.Fact(factNewVersion), w.keys.count())
		}
	})
}

// A follow-up whose rotation was superseded — rotated again, or rolled
// back — removes nothing and restarts nothing.
func TestFollowUpSuperseded(t *testing.T) {
	tests := []struct {
		name string
		// then acts after the first rotation's forward steps.
		then func(t *testing.T, w *world, first *fixture, run *runType)
		want string
	}{
		{
			name: "rotated again",
			then: func(t *testing.T, w *world, _ *fixture, run *runType) {
				second := w.rotation(t, "R-JWT0002", false)
				r2 := second.newRun()
				r2.SetNow(run.Now().Add(time.Hour))
				second.mustRun(t, r2, second.forward()...)
				w.track(run)
			},
			want: "superseded by a later rotation",
		},
		{
			name: "rolled back",
			then: func(t *testing.T, w *world, first *fixture, run *runType) {
				rb, rr := first.rollbackRequest(t, run)
				rr.SetNow(run.Now().Add(time.Hour))
				for _, s := range rb.Rollback {
					if err := s.Run(ctxTimeout(t), rr); err != nil {
						t.Fatalf("rollback %s: %v", s.Name, err)
					}
				}
				w.track(run)
			},
			want: "superseded by a later rotation",
		},
	}
	for _, backend := range backends {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				w := newWorld(t, backend)
				first := w.rotation(t, testReqID, false)
				run := first.newRun()
				first.mustRun(t, run, first.forward()...)
				tt.then(t, w, first, run)
				keys, gen, before := w.keysData(t), w.generation(t), w.writes()

				run.SetNow(run.Now().Add(DefaultGracePeriod))
				first.mustRun(t, run, first.followUp()...)

				if !strings.Contains(run.ProgressText(), tt.want) || run.Fact(factRemovalOutcome) != removalSuperseded {
					t.Errorf("progress %q, outcome %q; want %q", run.ProgressText(), run.Fact(factRemovalOutcome), tt.want)
				}
				if after := w.keysData(t); !equalMaps(after, keys) || w.generation(t) != gen {
					t.Error("the superseded follow-up changed the Secret or restarted the deployment")
				}
				if after := w.writes(); !slices.Equal(before, after) {
					t.Errorf("the superseded follow-up wrote %v", after[len(before):])
				}
			})
		}
	}
}
