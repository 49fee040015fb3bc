package approvals

import "time"

// OutboxEntry is a stored Notice awaiting delivery.
type OutboxEntry struct {
	Seq      uint64 `json:"seq"`
	Notice   Notice `json:"notice"`
	Attempts int    `json:"attempts"`
	// NotBefore delays the next attempt (backoff, Retry-After).
	NotBefore time.Time `json:"not_before,omitzero"`
	// LastError is the last delivery error (secret-free: it comes from the transport).
	LastError string `json:"last_error,omitempty"`
}
