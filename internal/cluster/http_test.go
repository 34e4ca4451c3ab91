package cluster

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHTTPHandlerBeforeOpenAndOnBadInput(t *testing.T) {
	h := NewHTTPHandler()
	mux := http.NewServeMux()
	h.Register(mux)
	post := func(path, body string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		return rec.Code
	}
	if code := post("/v1/internal/metadata/propose", `{}`); code != http.StatusServiceUnavailable {
		t.Fatalf("before a node is attached: HTTP %d", code)
	}
	n := openWithBrokers(t)
	h.node.Store(n)
	if code := post("/v1/internal/metadata/heartbeat", `{not json`); code != http.StatusBadRequest {
		t.Errorf("malformed heartbeat: HTTP %d", code)
	}
	// A malformed command is refused by the FSM, not by a crash.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/internal/metadata/propose", strings.NewReader(`{"type":"create-topic","data":"x"}`)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"sentinel":"invalid_request"`) {
		t.Errorf("malformed command: HTTP %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/cluster", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), n.ClusterID()) {
		t.Errorf("GET /v1/cluster: HTTP %d %s", rec.Code, rec.Body)
	}
	if code := post("/v1/cluster", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/cluster: HTTP %d", code)
	}
}
