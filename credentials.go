package main

// credentials.go gives kinds the credentials their config names (e.g.
// admin_key_env: OPENAI_ADMIN_KEY). A credential never appears in the config
// file: it comes from the environment variable NAME, or from the file named
// by NAME_FILE (a mounted Kubernetes Secret). Errors name the variables to
// set, never a value.

import (
	"fmt"
	"strings"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// credentialFileSuffix turns a credential name into the variable naming its file.
const credentialFileSuffix = "_FILE"

// envCredentials looks credentials up in the environment and in files.
type envCredentials struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
}

var _ rotators.Credentials = (*envCredentials)(nil)

// newEnvCredentials returns Credentials that read the environment with
// getenv and files with readFile (os.Getenv and os.ReadFile in production).
func newEnvCredentials(getenv func(string) string, readFile func(string) ([]byte, error)) *envCredentials {
	return &envCredentials{getenv: getenv, readFile: readFile}
}

// Lookup returns the credential called name: the value of the environment
// variable name, or the contents of the file named by name_FILE with its
// trailing newline removed. Setting both is an error, since it is not clear
// which one the operator meant.
func (c *envCredentials) Lookup(name string) (secret.Value, error) {
	if !validCredentialName(name) {
		return secret.Value{}, fmt.Errorf("credential name %q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
	}
	fileVar := name + credentialFileSuffix
	v, path := c.getenv(name), c.getenv(fileVar)
	switch {
	case v != "" && path != "":
		return secret.Value{}, fmt.Errorf("credential %s: both %s and %s are set; set only one", name, name, fileVar)
	case v != "":
		return secret.FromString(v), nil
	case path == "":
		return secret.Value{}, fmt.Errorf("credential %s is not set: set the environment variable %s, or %s to the path of a file holding it", name, name, fileVar)
	}
	b, err := c.readFile(path)
	if err != nil {
		// The error names the path, which is not secret; it cannot hold the
		// contents, which were not read.
		return secret.Value{}, fmt.Errorf("credential %s: read the file named by %s: %w", name, fileVar, err)
	}
	b = trimTrailingNewline(b)
	if len(b) == 0 {
		return secret.Value{}, fmt.Errorf("credential %s: the file named by %s (%s) is empty", name, fileVar, path)
	}
	return secret.New(b), nil
}

// trimTrailingNewline drops the line ending that editors and `echo` add
// (one "\n" or "\r\n"); the value itself is never trimmed otherwise.
func trimTrailingNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// validCredentialName reports whether name is an environment variable name.
func validCredentialName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'))
	}) < 0
}
