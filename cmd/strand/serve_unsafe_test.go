package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/strand-data/strand/internal/vfs"
)

func TestDiskFaultsEndpoint(t *testing.T) {
	fs, routes := unsafeFS(false, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+"/v1/internal/disk-faults", strings.NewReader(body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, bad := range []string{`{"ops":"scribble"}`, `{"ops":"write","kind":"melt"}`, `{"ops":"write","err":"EPERM"}`, `not json`} {
		if code, _ := call(http.MethodPost, bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
	if code, body := call(http.MethodPost, `{"ops":"write","path":"t-0/","err":"ENOSPC","times":1}`); code != http.StatusNoContent {
		t.Fatalf("inject: %d %s", code, body)
	}
	dir := filepath.Join(t.TempDir(), "t-0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.Create(fs, filepath.Join(dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("x")); !vfs.IsInjected(err) || !strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		t.Fatalf("write under the rule: %v", err)
	}
	if code, body := call(http.MethodGet, ""); code != http.StatusOK || !strings.Contains(body, `"fired":1`) {
		t.Fatalf("fired: %d %s", code, body)
	}
	call(http.MethodPost, `{"ops":"all"}`)
	if code, _ := call(http.MethodDelete, ""); code != http.StatusNoContent {
		t.Fatalf("clear: %d", code)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatalf("write after clearing: %v", err)
	}
	if _, routes := unsafeFS(true, false, slog.New(slog.NewTextHandler(io.Discard, nil))); routes != nil {
		t.Fatal("the disk-faults routes exist without --unsafe-disk-faults")
	}
}
