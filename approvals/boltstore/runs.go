package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// LoadRun returns the run journaled for requestID, or (nil, nil) when none was started.
func (s *Store) LoadRun(ctx context.Context, requestID string) (*executor.Run, error) {
	var out *executor.Run
	err := s.view(ctx, "load run "+requestID, wrapFnErr, func(t *tx) error {
		runs, err := bucket(t.btx, bucketRuns)
		if err != nil {
			return err
		}
		raw := runs.Get([]byte(requestID))
		if raw == nil {
			return nil
		}
		var r executor.Run
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SaveRun writes run and enqueues notices in one transaction, so progress
// shown in Slack never runs ahead of the journal. The run's request must
// exist: a run with no request would be an orphan nobody can see or resume.
// The follow-up index is updated in the same transaction: the stored run's
// keys are removed and run's scheduled or running follow-ups are indexed.
func (s *Store) SaveRun(ctx context.Context, run *executor.Run, notices ...approvals.Notice) error {
	if run == nil {
		return errors.New("save run: nil run")
	}
	op := "save run " + run.RequestID
	if run.RequestID == "" {
		return fmt.Errorf("%s: run has no request ID", op)
	}
	data, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	keys, err := indexedFollowUps(run)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.update(ctx, op, wrapFnErr, func(t *tx) error {
		reqs, err := bucket(t.btx, bucketRequests)
		if err != nil {
			return err
		}
		if reqs.Get([]byte(run.RequestID)) == nil {
			return fmt.Errorf("request %s: %w", run.RequestID, approvals.ErrNotFound)
		}
		runs, err := bucket(t.btx, bucketRuns)
		if err != nil {
			return err
		}
		// Before the Put: the previous value is only read while it is unchanged.
		if err := reindexFollowUps(t.btx, runs.Get([]byte(run.RequestID)), keys); err != nil {
			return err
		}
		if err := runs.Put([]byte(run.RequestID), data); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		for _, n := range notices {
			if err := t.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
}
