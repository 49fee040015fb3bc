package jwt

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// kidBytes is the key id's length: 16 hex digits, as the runbook's
// `openssl rand -hex 8`.
const kidBytes = 8

// PEM block types rotary writes: PKCS#8 for the private key (what
// `openssl genpkey` and OpenSSL 3's `genrsa` write, and what Node's
// crypto.createPrivateKey and jsonwebtoken read), PKIX for the public key
// (`openssl rsa -pubout`). Both PKCS#1 forms are accepted when reading.
const (
	pemPrivateKey      = "PRIVATE KEY"
	pemRSAPrivateKey   = "RSA PRIVATE KEY"
	pemPublicKey       = "PUBLIC KEY"
	pemRSAPublicKey    = "RSA PUBLIC KEY"
	fingerprintPrefix  = "sha256:"
	maxPublicKeyLength = 16 << 10 // far above a 4096-bit PEM; bounds parsing
)

// newKID returns a key id of 2*kidBytes hex digits from r.
func newKID(r io.Reader) (string, error) {
	b := make([]byte, kidBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading %d random bytes for the key id: %w", kidBytes, err)
	}
	return hex.EncodeToString(b), nil
}

// encodePrivate returns the PKCS#8 PEM of k as a secret.
func encodePrivate(k *rsa.PrivateKey) (secret.Value, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return secret.Value{}, fmt.Errorf("encoding the private key as PKCS#8: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der})
	clear(der)
	return secret.New(out), nil
}

// encodePublic returns the PKIX PEM of k (public, but carried like the
// other Secret values).
func encodePublic(k *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// parsePublic reads one PEM RSA public key (PKIX or PKCS#1).
func parsePublic(v secret.Value) (*rsa.PublicKey, error) {
	raw := v.Reveal()
	if len(raw) > maxPublicKeyLength {
		return nil, fmt.Errorf("%d bytes is too long for a public key", len(raw))
	}
	block, rest := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	switch block.Type {
	case pemPublicKey:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM %q does not parse: %w", block.Type, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an RSA public key", k)
		}
		return rk, nil
	case pemRSAPublicKey:
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM %q does not parse: %w", block.Type, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key (want %q)", block.Type, pemPublicKey)
}

// parsePrivate reads one PEM RSA private key (PKCS#8 or PKCS#1). Its errors
// never quote the input or the parser's own message.
func parsePrivate(v secret.Value) (*rsa.PrivateKey, error) {
	block, rest := pem.Decode(v.Reveal())
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	switch block.Type {
	case pemPrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM %q does not parse as PKCS#8", block.Type)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an RSA private key", k)
		}
		return rk, nil
	case pemRSAPrivateKey:
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM %q does not parse as PKCS#1", block.Type)
		}
		return k, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a private key (want %q)", block.Type, pemPrivateKey)
}

// fingerprint identifies a public key whatever its PEM form: "sha256:" and
// the hex SHA-256 of its PKIX DER encoding (as `openssl rsa -pubin
// -outform DER | sha256sum` prints it).
func fingerprint(k *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("encoding the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:]), nil
}

// publicFingerprint parses a PEM public key and returns its fingerprint.
func publicFingerprint(v secret.Value) (string, error) {
	k, err := parsePublic(v)
	if err != nil {
		return "", err
	}
	return fingerprint(k)
}

// keySet is the data of the Secret (or of the Secret Manager object): key
// name → value. Only the four configured keys are interpreted.
type keySet map[string]secret.Value

// keyNames lists a key set's names, sorted (names are not secret).
func (ks keySet) keyNames() []string {
	return slices.Sorted(maps.Keys(ks))
}

// decodePayload reads a Secret Manager payload: a JSON object whose string
// members become keys; members of other types are kept raw for
// encodePayload (they are not the kind's keys). Errors give the position,
// never the text.
func decodePayload(v secret.Value) (keySet, map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v.Reveal(), &raw); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, nil, fmt.Errorf("not JSON (syntax error at byte %d)", syn.Offset)
		}
		return nil, nil, errors.New("not a JSON object")
	}
	if raw == nil {
		return nil, nil, errors.New("not a JSON object (null)")
	}
	ks := make(keySet, len(raw))
	for k, m := range raw {
		var s string
		if json.Unmarshal(m, &s) == nil {
			ks[k] = secret.FromString(s)
		}
	}
	return ks, raw, nil
}

// encodePayload is base with set's keys set and remove's keys removed.
func encodePayload(base map[string]json.RawMessage, set keySet, remove []string) (secret.Value, error) {
	obj := make(map[string]json.RawMessage, len(base)+len(set))
	for k, m := range base {
		obj[k] = m
	}
	for k, v := range set {
		m, err := json.Marshal(string(v.Reveal()))
		if err != nil {
			return secret.Value{}, fmt.Errorf("encoding key %s", k)
		}
		obj[k] = m
	}
	for _, k := range remove {
		delete(obj, k)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return secret.Value{}, errors.New("encoding the Secret Manager payload")
	}
	return secret.New(out), nil
}
