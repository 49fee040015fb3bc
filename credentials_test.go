package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// fakeEnv is an environment and a file system, in memory.
type fakeEnv struct {
	vars  map[string]string
	files map[string]string
}

func (f fakeEnv) getenv(k string) string { return f.vars[k] }

func (f fakeEnv) readFile(path string) ([]byte, error) {
	s, ok := f.files[path]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
	}
	return []byte(s), nil
}

func TestCredentialsLookup(t *testing.T) {
	const value = "sk-admin-Zq9xVALUE"
	tests := []struct {
		name    string
		env     fakeEnv
		lookup  string
		want    string
		wantErr []string // fragments of the error
		errIs   error
	}{
		{
			name:   "from env",
			env:    fakeEnv{vars: map[string]string{"OPENAI_ADMIN_KEY": value}},
			lookup: "OPENAI_ADMIN_KEY",
			want:   value,
		},
		{
			name:   "env value kept verbatim",
			env:    fakeEnv{vars: map[string]string{"K": " " + value + "\n"}},
			lookup: "K",
			want:   " " + value + "\n",
		},
		{
			name: "from file, newline trimmed",
			env: fakeEnv{
				vars:  map[string]string{"OPENAI_ADMIN_KEY_FILE": "/run/secrets/openai"},
				files: map[string]string{"/run/secrets/openai": value + "\n"},
			},
			lookup: "OPENAI_ADMIN_KEY",
			want:   value,
		},
		{
			name: "from file, CRLF trimmed, one line ending only",
			env: fakeEnv{
				vars:  map[string]string{"K_FILE": "/k"},
				files: map[string]string{"/k": value + "\n\r\n"},
			},
			lookup: "K",
			want:   value + "\n",
		},
		{
			name: "from file without newline",
			env: fakeEnv{
				vars:  map[string]string{"K_FILE": "/k"},
				files: map[string]string{"/k": value},
			},
			lookup: "K",
			want:   value,
		},
		{
			name:    "neither set",
			env:     fakeEnv{},
			lookup:  "SENDGRID_ADMIN_KEY",
			wantErr: []string{"credential SENDGRID_ADMIN_KEY is not set", "SENDGRID_ADMIN_KEY_FILE"},
		},
		{
			name: "both set",
			env: fakeEnv{
				vars:  map[string]string{"K": value, "K_FILE": "/k"},
				files: map[string]string{"/k": value},
			},
			lookup:  "K",
			wantErr: []string{"both K and K_FILE are set"},
		},
		{
			name:    "file missing",
			env:     fakeEnv{vars: map[string]string{"K_FILE": "/nope"}},
			lookup:  "K",
			wantErr: []string{"read the file named by K_FILE", "/nope"},
			errIs:   fs.ErrNotExist,
		},
		{
			name: "file empty",
			env: fakeEnv{
				vars:  map[string]string{"K_FILE": "/k"},
				files: map[string]string{"/k": "\n"},
			},
			lookup:  "K",
			wantErr: []string{"the file named by K_FILE (/k) is empty"},
		},
		{
			name:    "invalid name",
			env:     fakeEnv{vars: map[string]string{"BAD-NAME": value}},
			lookup:  "BAD-NAME",
			wantErr: []string{`credential name "BAD-NAME" is not an environment variable name`},
		},
		{
			name:    "empty name",
			env:     fakeEnv{},
			lookup:  "",
			wantErr: []string{"is not an environment variable name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := newEnvCredentials(tt.env.getenv, tt.env.readFile)
			got, err := creds.Lookup(tt.lookup)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Lookup: %v", err)
				}
				if string(got.Reveal()) != tt.want {
					t.Fatalf("Lookup = %q, want %q", got.Reveal(), tt.want)
				}
				if s := fmt.Sprintf("%v %s %+v", got, got, got); strings.Contains(s, value) {
					t.Fatalf("formatted credential shows the value: %s", s)
				}
				return
			}
			if err == nil {
				t.Fatalf("Lookup = %v, want an error", got)
			}
			if !got.IsZero() {
				t.Fatal("Lookup returned a value with its error")
			}
			for _, frag := range tt.wantErr {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not contain %q", err, frag)
				}
			}
			if strings.Contains(err.Error(), value) {
				t.Fatalf("error %q contains the credential's value", err)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Fatalf("error %v is not %v", err, tt.errIs)
			}
		})
	}
}
