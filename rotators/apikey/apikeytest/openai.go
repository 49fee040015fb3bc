package apikeytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// OpenAI API limits the fake enforces as the real one documents them.
const (
	openAIDefaultPage = 20
	openAIMaxPage     = 100
)

// OpenAIOptions configure the OpenAI fake.
type OpenAIOptions struct {
	// AdminKey is the only bearer token accepted.
	AdminKey string
	// ProjectID is the only project that exists; others answer 404.
	ProjectID string
	// PageSize caps list pages below the API's own maximum (0: no cap), so
	// tests can force pagination with few accounts.
	PageSize int
}

// ServiceAccount is a project service account held by the fake.
type ServiceAccount struct {
	ID        string
	Name      string
	CreatedAt int64
	// KeyID is the id of the account's API key ("" when seeded without one).
	KeyID string
}

// OpenAI fakes the project service account endpoints of the OpenAI Admin API:
//
//	POST   /v1/organization/projects/{project_id}/service_accounts
//	GET    /v1/organization/projects/{project_id}/service_accounts?limit=&after=
//	DELETE /v1/organization/projects/{project_id}/service_accounts/{service_account_id}
type OpenAI struct {
	core
	projectID string
	pageSize  int
	accounts  []ServiceAccount // creation order; guarded by core.mu
}

// NewOpenAI starts an OpenAI Admin API fake. Close it when done.
func NewOpenAI(o OpenAIOptions) *OpenAI {
	f := &OpenAI{projectID: o.ProjectID, pageSize: o.PageSize}
	f.adminKey = o.AdminKey
	f.writeError = writeOpenAIError
	f.authFailure = func(given string) string {
		return "Incorrect API key provided: " + mask(given) + ". You can find your API key at https://platform.openai.com/account/api-keys."
	}
	mux := http.NewServeMux()
	const base = "/v1/organization/projects/{project_id}/service_accounts"
	mux.HandleFunc("POST "+base, f.create)
	mux.HandleFunc("GET "+base, f.list)
	mux.HandleFunc("DELETE "+base+"/{service_account_id}", f.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOpenAIError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	})
	f.start(mux)
	return f
}

// AddServiceAccount seeds an existing service account (with an API key whose
// value is not recorded: it was made "before" the test) and returns its id.
func (f *OpenAI) AddServiceAccount(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := f.next()
	sa := ServiceAccount{ID: fmt.Sprintf("svc_acct_seed%d", n), Name: name, CreatedAt: int64(1_700_000_000 + n), KeyID: fmt.Sprintf("key_seed%d", n)}
	f.accounts = append(f.accounts, sa)
	return sa.ID
}

// ServiceAccounts returns the project's service accounts in creation order.
func (f *OpenAI) ServiceAccounts() []ServiceAccount {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accounts)
}

func (f *OpenAI) projectOK(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("project_id") != f.projectID {
		writeOpenAIError(w, http.StatusNotFound, "No such project: "+r.PathValue("project_id"))
		return false
	}
	return true
}

type openAIKeyJSON struct {
	Object    string `json:"object"`
	Value     string `json:"value"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	ID        string `json:"id"`
}

type openAIAccountJSON struct {
	Object    string         `json:"object"`
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Role      string         `json:"role"`
	CreatedAt int64          `json:"created_at"`
	APIKey    *openAIKeyJSON `json:"api_key,omitempty"`
}

func (f *OpenAI) create(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	var body struct {
		Name *string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == nil || *body.Name == "" {
		writeOpenAIError(w, http.StatusBadRequest, "Missing required parameter: 'name'.")
		return
	}
	f.mu.Lock()
	n, random := f.next()
	sa := ServiceAccount{ID: fmt.Sprintf("svc_acct_%d", n), Name: *body.Name, CreatedAt: int64(1_800_000_000 + n), KeyID: fmt.Sprintf("key_%d", n)}
	value := fmt.Sprintf("sk-svcacct-TESTKEY-%d-%s", n, random)
	f.accounts = append(f.accounts, sa)
	f.issued = append(f.issued, value)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, openAIAccountJSON{
		Object: "organization.project.service_account", ID: sa.ID, Name: sa.Name, Role: "member", CreatedAt: sa.CreatedAt,
		APIKey: &openAIKeyJSON{Object: "organization.project.service_account.api_key", Value: value, Name: "Secret Key", CreatedAt: sa.CreatedAt, ID: sa.KeyID},
	})
}

func (f *OpenAI) list(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	limit := openAIDefaultPage
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > openAIMaxPage {
			writeOpenAIError(w, http.StatusBadRequest, "Invalid 'limit': must be between 1 and 100.")
			return
		}
		limit = n
	}
	if f.pageSize > 0 && limit > f.pageSize {
		limit = f.pageSize
	}
	f.mu.Lock()
	all := slices.Clone(f.accounts)
	f.mu.Unlock()
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		i := slices.IndexFunc(all, func(sa ServiceAccount) bool { return sa.ID == after })
		if i < 0 {
			writeOpenAIError(w, http.StatusBadRequest, "Invalid 'after' cursor.")
			return
		}
		start = i + 1
	}
	end := min(start+limit, len(all))
	page := struct {
		Object  string              `json:"object"`
		Data    []openAIAccountJSON `json:"data"`
		FirstID *string             `json:"first_id"`
		LastID  *string             `json:"last_id"`
		HasMore bool                `json:"has_more"`
	}{Object: "list", Data: []openAIAccountJSON{}, HasMore: end < len(all)}
	for _, sa := range all[start:end] {
		page.Data = append(page.Data, openAIAccountJSON{Object: "organization.project.service_account", ID: sa.ID, Name: sa.Name, Role: "member", CreatedAt: sa.CreatedAt})
	}
	if len(page.Data) > 0 {
		page.FirstID, page.LastID = &page.Data[0].ID, &page.Data[len(page.Data)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (f *OpenAI) delete(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	id := r.PathValue("service_account_id")
	f.mu.Lock()
	i := slices.IndexFunc(f.accounts, func(sa ServiceAccount) bool { return sa.ID == id })
	if i >= 0 {
		f.accounts = slices.Delete(f.accounts, i, i+1)
	}
	f.mu.Unlock()
	if i < 0 {
		writeOpenAIError(w, http.StatusNotFound, "No such service account: "+id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "organization.project.service_account.deleted", "id": id, "deleted": true})
}

// writeOpenAIError writes OpenAI's error shape:
// {"error": {"message", "type", "param", "code"}}.
func writeOpenAIError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	if status >= http.StatusInternalServerError {
		typ = "server_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}
