package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// HTTPHandler serves the metadata endpoints on the node's HTTP listener:
//
//	POST /v1/internal/metadata/propose    a forwarded command (leader only)
//	POST /v1/internal/metadata/heartbeat  a broker heartbeat (leader only)
//	GET  /v1/cluster                      this node's State as JSON
//
// The listener starts before the metadata node opens, so the handler is registered first
// and Open attaches the node to it (Config.HTTP); until then it answers 503.
type HTTPHandler struct {
	node atomic.Pointer[Node]
	mux  *http.ServeMux
}

// NewHTTPHandler returns a handler with no node attached yet.
func NewHTTPHandler() *HTTPHandler {
	h := &HTTPHandler{mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /v1/internal/metadata/propose", h.propose)
	h.mux.HandleFunc("POST /v1/internal/metadata/heartbeat", h.heartbeat)
	h.mux.HandleFunc("GET /v1/cluster", h.state)
	return h
}

// Register adds the handler's routes to a mux (httpapi.Server or http.ServeMux).
func (h *HTTPHandler) Register(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("/v1/internal/metadata/", h)
	mux.Handle("/v1/cluster", h)
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.node.Load() == nil {
		http.Error(w, "metadata node not open", http.StatusServiceUnavailable)
		return
	}
	h.mux.ServeHTTP(w, r)
}

const maxCommandBytes = 16 << 20

func (h *HTTPHandler) propose(w http.ResponseWriter, r *http.Request) {
	n := h.node.Load()
	entry, err := io.ReadAll(io.LimitReader(r.Body, maxCommandBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var resp proposeResponse
	if n.raft.State() != raft.Leader {
		resp.Error = encodeError(ErrNotController)
	} else {
		value, index, err := n.applyLocal(r.Context(), entry)
		resp.Index, resp.Error = index, encodeError(err)
		if err == nil && value != nil {
			if resp.Value, err = json.Marshal(value); err != nil {
				resp.Error = encodeError(err)
			}
		}
	}
	writeJSON(w, resp)
}

func (h *HTTPHandler) heartbeat(w http.ResponseWriter, r *http.Request) {
	n := h.node.Load()
	var hb heartbeat
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, heartbeatResponse{Error: encodeError(n.receiveHeartbeat(r.Context(), hb))})
}

func (h *HTTPHandler) state(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, h.node.Load().State())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
