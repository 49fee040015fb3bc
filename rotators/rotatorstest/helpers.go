package rotatorstest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// Creds resolves credential names from a map, as a kind's credential
// lookup does from the environment.
type Creds map[string]string

// Lookup returns the named credential or an error naming (only) the name.
func (c Creds) Lookup(name string) (secret.Value, error) {
	v, ok := c[name]
	if !ok {
		return secret.Value{}, fmt.Errorf("credential %s is not set", name)
	}
	return secret.FromString(v), nil
}

// AssertNoLeak fails t when any text contains any of the non-empty values.
func AssertNoLeak(t testing.TB, values []string, texts ...string) {
	t.Helper()
	for _, v := range values {
		if v == "" {
			continue
		}
		for _, s := range texts {
			if strings.Contains(s, v) {
				t.Errorf("secret value leaked into %q", s)
			}
		}
	}
}
