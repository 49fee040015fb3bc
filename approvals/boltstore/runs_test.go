package boltstore

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

func TestSaveRunWithNotices(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StateRunning, t0()))

	if run, err := s.LoadRun(ctx, "r1"); run != nil || err != nil {
		t.Fatalf("LoadRun before any save = %+v, %v; want nil, nil", run, err)
	}
	run := &executor.Run{RequestID: "r1", Target: "api", Phase: executor.PhaseForward,
		Steps: []executor.StepRecord{{Name: "mint", Status: executor.StepRunning, StartedAt: t0()}}}
	progress := approvals.Notice{Kind: approvals.NoticeProgress, RequestID: "r1", Step: "mint"}
	if err := s.SaveRun(ctx, run, progress); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	if !signalled(s) {
		t.Error("SaveRun with a notice did not signal the outbox")
	}
	got, err := s.LoadRun(ctx, "r1")
	if err != nil || !reflect.DeepEqual(got, run) {
		t.Fatalf("LoadRun = %+v, %v; want %+v", got, err, run)
	}
	due, err := s.OutboxDue(ctx, t0(), 10)
	if err != nil || len(due) != 1 || due[0].Notice != progress {
		t.Fatalf("outbox = %+v, %v; want the progress notice", due, err)
	}

	// Without notices: the run is saved and the deliverer is not woken.
	run.Steps[0].Status = executor.StepDone
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	if signalled(s) {
		t.Error("SaveRun without notices signalled")
	}
	if got, _ := s.LoadRun(ctx, "r1"); got.Steps[0].Status != executor.StepDone {
		t.Errorf("run not updated: %+v", got)
	}
}

// TestSaveRunIsAtomic: when one notice is refused, neither the run nor the
// notices before it are stored.
func TestSaveRunIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StateRunning, t0()))
	saved := &executor.Run{RequestID: "r1", Phase: executor.PhaseForward}
	if err := s.SaveRun(ctx, saved); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}

	next := &executor.Run{RequestID: "r1", Phase: executor.PhaseRollback, FailedStep: "mint"}
	err := s.SaveRun(ctx, next,
		approvals.Notice{Kind: approvals.NoticeProgress, RequestID: "r1"},
		approvals.Notice{RequestID: "r1"}, // no kind: refused
	)
	if err == nil || !strings.Contains(err.Error(), "no kind") || !strings.Contains(err.Error(), "save run r1") {
		t.Fatalf("SaveRun with a bad notice = %v, want a refusal naming the run", err)
	}
	if got, _ := s.LoadRun(ctx, "r1"); !reflect.DeepEqual(got, saved) {
		t.Errorf("run after failed SaveRun = %+v, want the previous %+v", got, saved)
	}
	if n := depth(t, s); n != 0 {
		t.Errorf("outbox depth after failed SaveRun = %d, want 0", n)
	}
	if signalled(s) {
		t.Error("failed SaveRun signalled")
	}
}

func TestSaveRunRefusals(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.SaveRun(ctx, &executor.Run{RequestID: "ghost"}); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("SaveRun for a missing request = %v, want ErrNotFound", err)
	}
	if err := s.SaveRun(ctx, &executor.Run{}); err == nil {
		t.Error("SaveRun without a request ID succeeded")
	}
	if err := s.SaveRun(ctx, nil); err == nil {
		t.Error("SaveRun(nil) succeeded")
	}
}
