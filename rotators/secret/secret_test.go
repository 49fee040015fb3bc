package secret_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators/secret"
)

const value = "sk-live-0123456789abcdef"

func TestValueNeverFormatsItself(t *testing.T) {
	v := secret.FromString(value)
	wrapped := struct {
		Key secret.Value
		Ptr *secret.Value
	}{v, &v}
	for _, s := range []string{
		fmt.Sprint(v), fmt.Sprintf("%s %v %+v %#v %q %x %d", v, v, v, v, v, v, v),
		fmt.Sprintf("%v %+v", wrapped, wrapped), v.String(), v.GoString(),
		fmt.Errorf("failed with %v", v).Error(),
	} {
		if strings.Contains(s, value) || strings.Contains(s, fmt.Sprintf("%x", value)) {
			t.Fatalf("formatted output reveals the value: %s", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", v, "group", slog.GroupValue(slog.Any("k", v)))
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", v)
	if strings.Contains(buf.String(), value) || !strings.Contains(buf.String(), secret.Redacted) {
		t.Fatalf("log output: %s", buf.String())
	}
}

func TestValueRefusesSerialization(t *testing.T) {
	v := secret.FromString(value)
	if b, err := json.Marshal(struct{ K secret.Value }{v}); err == nil || bytes.Contains(b, []byte(value)) {
		t.Fatalf("json.Marshal: %s %v", b, err)
	}
	if b, err := json.Marshal([]any{v, &v}); err == nil || bytes.Contains(b, []byte(value)) {
		t.Fatalf("json.Marshal of a slice: %s %v", b, err)
	}
	var back secret.Value
	if err := json.Unmarshal([]byte(`"x"`), &back); err == nil {
		t.Fatal("a Value was deserialized")
	}
}

func TestRevealAndCompare(t *testing.T) {
	v := secret.New([]byte(value))
	if string(v.Reveal()) != value || v.IsZero() || !v.Equal(secret.FromString(value)) || v.Equal(secret.FromString("other")) {
		t.Fatal("Reveal/Equal/IsZero wrong")
	}
	if !(secret.Value{}).IsZero() {
		t.Fatal("zero Value not zero")
	}
	var err error = errors.New(fmt.Sprint(v))
	if strings.Contains(err.Error(), value) {
		t.Fatal("leak through errors.New(fmt.Sprint)")
	}
}
