// Package secret holds secret values in memory only.
//
// A Value cannot be printed, logged, JSON-encoded or formatted by accident:
// every such path yields "[REDACTED]". The bytes are reached only through
// Reveal, so every use of the real value is greppable.
package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
)

// Redacted is what a Value shows instead of itself.
const Redacted = "[REDACTED]"

// Value is a secret held in process memory.
type Value struct {
	b []byte
}

// New wraps b. The caller must not keep or modify b afterwards.
func New(b []byte) Value { return Value{b: b} }

// FromString wraps s.
func FromString(s string) Value { return Value{b: []byte(s)} }

// Reveal returns the secret bytes. Use only to hand the value to its destination.
func (v Value) Reveal() []byte { return v.b }

// IsZero reports whether there is no value.
func (v Value) IsZero() bool { return len(v.b) == 0 }

// Equal compares two values without revealing them.
func (v Value) Equal(o Value) bool { return string(v.b) == string(o.b) }

func (Value) String() string                { return Redacted }
func (Value) GoString() string              { return Redacted }
func (Value) Format(f fmt.State, _ rune)    { _, _ = f.Write([]byte(Redacted)) }
func (Value) LogValue() slog.Value          { return slog.StringValue(Redacted) }
func (Value) MarshalText() ([]byte, error)  { return nil, errMarshal }
func (Value) MarshalJSON() ([]byte, error)  { return nil, errMarshal }
func (*Value) UnmarshalJSON(_ []byte) error { return errMarshal }

var errMarshal = errors.New("secret.Value refuses to be serialized")

var _ json.Marshaler = Value{}
