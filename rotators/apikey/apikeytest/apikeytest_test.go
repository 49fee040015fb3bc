package apikeytest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const admin = "sk-admin-FAKEADMIN-0000"

func call(t *testing.T, c *http.Client, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v", method, url, err)
		}
	}
	return resp.StatusCode, out
}

func TestOpenAIShapesAuthAndFaults(t *testing.T) {
	f := NewOpenAI(OpenAIOptions{AdminKey: admin, ProjectID: "proj_a"})
	defer f.Close()
	base := f.URL() + "/v1/organization/projects/proj_a/service_accounts"

	status, body := call(t, f.Client(), "POST", base, "sk-wrong-000000000000", `{"name":"x"}`)
	msg, _ := body["error"].(map[string]any)["message"].(string)
	if status != 401 || !strings.HasPrefix(msg, "Incorrect API key provided") {
		t.Errorf("bad key: %d %v", status, body)
	}

	status, body = call(t, f.Client(), "POST", base, admin, `{"name":"rotary:t:prod:R1"}`)
	key, _ := body["api_key"].(map[string]any)
	if status != 200 || body["object"] != "organization.project.service_account" || body["name"] != "rotary:t:prod:R1" ||
		key["object"] != "organization.project.service_account.api_key" || key["value"] != f.IssuedKeys()[0] ||
		!strings.HasPrefix(f.IssuedKeys()[0], "sk-svcacct-TESTKEY-") {
		t.Errorf("create: %d %v", status, body)
	}
	id, _ := body["id"].(string)

	f.FailNext(1, 503)
	if status, _ := call(t, f.Client(), "GET", base, admin, ""); status != 503 {
		t.Errorf("fault: status %d", status)
	}
	status, body = call(t, f.Client(), "GET", base+"?limit=100", admin, "")
	if data, _ := body["data"].([]any); status != 200 || body["object"] != "list" || len(data) != 1 || body["has_more"] != false {
		t.Errorf("list: %d %v", status, body)
	}

	if status, body = call(t, f.Client(), "DELETE", base+"/"+id, admin, ""); status != 200 || body["deleted"] != true {
		t.Errorf("delete: %d %v", status, body)
	}
	if status, _ = call(t, f.Client(), "DELETE", base+"/"+id, admin, ""); status != 404 {
		t.Errorf("delete again: %d", status)
	}
	if status, _ = call(t, f.Client(), "GET", f.URL()+"/v1/organization/projects/proj_other/service_accounts", admin, ""); status != 404 {
		t.Errorf("other project: %d", status)
	}

	want := []Call{{"POST", "/v1/organization/projects/proj_a/service_accounts", 401}, {"POST", "/v1/organization/projects/proj_a/service_accounts", 200}}
	if got := f.Calls(); len(got) != 7 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("calls = %v", got)
	}
}

func TestSendGridShapesAuthAndFaults(t *testing.T) {
	f := NewSendGrid(SendGridOptions{AdminKey: admin})
	defer f.Close()
	base := f.URL() + "/v3/api_keys"

	if status, body := call(t, f.Client(), "GET", base, "", ""); status != 401 || body["errors"] == nil {
		t.Errorf("no key: %d %v", status, body)
	}
	status, body := call(t, f.Client(), "POST", base, admin, `{"name":"rotary:t:prod:R1","scopes":["mail.send"]}`)
	id, _ := body["api_key_id"].(string)
	if status != 201 || body["api_key"] != f.IssuedKeys()[0] || !strings.HasPrefix(f.IssuedKeys()[0], "SG."+id+".TESTKEY-") {
		t.Errorf("create: %d %v", status, body)
	}
	if status, _ := call(t, f.Client(), "POST", base, admin, `{"scopes":["mail.send"]}`); status != 400 {
		t.Errorf("create without name: %d", status)
	}
	status, body = call(t, f.Client(), "GET", base, admin, "")
	if result, _ := body["result"].([]any); status != 200 || len(result) != 1 {
		t.Errorf("list: %d %v", status, body)
	}
	f.FailNext(2, 500)
	for range 2 {
		if status, _ := call(t, f.Client(), "DELETE", base+"/"+id, admin, ""); status != 500 {
			t.Errorf("fault: %d", status)
		}
	}
	if status, _ := call(t, f.Client(), "DELETE", base+"/"+id, admin, ""); status != 204 {
		t.Errorf("delete: %d", status)
	}
	if len(f.APIKeys()) != 0 {
		t.Error("key not deleted")
	}
}
