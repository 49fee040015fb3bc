package database

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// Password shape: URL-safe characters, so the DSN needs no escaping in
// practice and the value survives every shell and YAML it may pass
// through; 40 of 64 symbols is 240 bits.
const (
	passwordLen      = 40
	passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// SCRAM-SHA-256 verifier parameters, as PostgreSQL's own defaults
// (scram_iterations, SCRAM_DEFAULT_SALT_LEN).
const (
	scramIterations = 4096
	scramSaltLen    = 16
)

// newPassword draws a password from r (crypto/rand.Reader in production).
// The alphabet has exactly 64 symbols, so taking 6 bits of each byte is
// unbiased.
func newPassword(r io.Reader) (secret.Value, error) {
	b := make([]byte, passwordLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return secret.Value{}, fmt.Errorf("reading randomness for the password: %w", err)
	}
	for i := range b {
		b[i] = passwordAlphabet[b[i]&63]
	}
	return secret.New(b), nil
}

// errVerifierInput: SCRAM applies SASLprep to non-ASCII passwords; rotary
// only hashes passwords it generated (printable ASCII, where SASLprep is
// the identity), so it needs no SASLprep of its own.
var errVerifierInput = errors.New("a SCRAM verifier is only computed for printable ASCII passwords")

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802/7677; the format of pg_authid.rolpassword), with a salt
// drawn from r. Sending it instead of the password (CREATE ROLE … PASSWORD
// 'SCRAM-SHA-256$…', stored as is) keeps the password out of the server's
// statement log, pg_stat_activity and pg_stat_statements.
func scramVerifier(password secret.Value, r io.Reader) (string, error) {
	for _, c := range password.Reveal() {
		if c < 0x20 || c > 0x7e {
			return "", errVerifierInput
		}
	}
	salt := make([]byte, scramSaltLen)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("reading randomness for the salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, string(password.Reveal()), salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("deriving the SCRAM key: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(scramIterations) + ":" + b64(salt) + "$" + b64(storedKey[:]) + ":" + b64(serverKey), nil
}
