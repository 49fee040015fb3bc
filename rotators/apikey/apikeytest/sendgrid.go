package apikeytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// sendGridMaxKeys is SendGrid's documented limit of API keys per account;
// creating one more answers 403.
const sendGridMaxKeys = 100

// SendGridOptions configure the SendGrid fake.
type SendGridOptions struct {
	// AdminKey is the only bearer token accepted.
	AdminKey string
}

// APIKey is a SendGrid API key held by the fake (without its value).
type APIKey struct {
	ID     string
	Name   string
	Scopes []string
}

// SendGrid fakes the api_keys endpoints of the SendGrid v3 API:
//
//	POST   /v3/api_keys               {"name", "scopes"} → 201 {"api_key", "api_key_id", "name", "scopes"}
//	GET    /v3/api_keys?limit=        → 200 {"result": [{"name", "api_key_id"}]}
//	DELETE /v3/api_keys/{api_key_id}  → 204, or 404
type SendGrid struct {
	core
	keys []APIKey // creation order; guarded by core.mu
}

// NewSendGrid starts a SendGrid API fake. Close it when done.
func NewSendGrid(o SendGridOptions) *SendGrid {
	f := &SendGrid{}
	f.adminKey = o.AdminKey
	f.writeError = writeSendGridError
	f.authFailure = func(string) string { return "authorization required" }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/api_keys", f.create)
	mux.HandleFunc("GET /v3/api_keys", f.list)
	mux.HandleFunc("DELETE /v3/api_keys/{api_key_id}", f.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeSendGridError(w, http.StatusNotFound, "resource not found")
	})
	f.start(mux)
	return f
}

// AddAPIKey seeds an existing key (its value unrecorded) and returns its id.
func (f *SendGrid) AddAPIKey(name string, scopes []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := f.next()
	k := APIKey{ID: fmt.Sprintf("SeedKeyId%d", n), Name: name, Scopes: slices.Clone(scopes)}
	f.keys = append(f.keys, k)
	return k.ID
}

// APIKeys returns the account's keys in creation order.
func (f *SendGrid) APIKeys() []APIKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]APIKey, len(f.keys))
	for i, k := range f.keys {
		out[i] = APIKey{ID: k.ID, Name: k.Name, Scopes: slices.Clone(k.Scopes)}
	}
	return out
}

func (f *SendGrid) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
		writeSendGridErrorField(w, http.StatusBadRequest, "name", "missing required argument")
		return
	}
	f.mu.Lock()
	if len(f.keys) >= sendGridMaxKeys {
		f.mu.Unlock()
		writeSendGridError(w, http.StatusForbidden, "Cannot create more than 100 API keys")
		return
	}
	n, random := f.next()
	k := APIKey{ID: fmt.Sprintf("TestKeyId%d", n), Name: body.Name, Scopes: slices.Clone(body.Scopes)}
	value := fmt.Sprintf("SG.%s.TESTKEY-%d-%s", k.ID, n, random)
	f.keys = append(f.keys, k)
	f.issued = append(f.issued, value)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"api_key": value, "api_key_id": k.ID, "name": k.Name, "scopes": k.Scopes})
}

func (f *SendGrid) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	keys := slices.Clone(f.keys)
	f.mu.Unlock()
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeSendGridErrorField(w, http.StatusBadRequest, "limit", "invalid limit")
			return
		}
		keys = keys[:min(n, len(keys))]
	}
	type item struct {
		Name     string `json:"name"`
		APIKeyID string `json:"api_key_id"`
	}
	result := []item{}
	for _, k := range keys {
		result = append(result, item{Name: k.Name, APIKeyID: k.ID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

func (f *SendGrid) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("api_key_id")
	f.mu.Lock()
	i := slices.IndexFunc(f.keys, func(k APIKey) bool { return k.ID == id })
	if i >= 0 {
		f.keys = slices.Delete(f.keys, i, i+1)
	}
	f.mu.Unlock()
	if i < 0 {
		writeSendGridError(w, http.StatusNotFound, "unable to find API Key")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeSendGridError writes SendGrid's error shape:
// {"errors": [{"field", "message"}]}.
func writeSendGridError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"field": nil, "message": msg}}})
}

func writeSendGridErrorField(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"field": field, "message": msg}}})
}
