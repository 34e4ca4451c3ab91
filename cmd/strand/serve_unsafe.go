package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/strand-data/strand/internal/vfs"
)

// The unsafe serve flags exist for the fault suite (test/cluster) only and are hidden from
// help: --unsafe-volatile-writes keeps written data in process memory until it is synced (so
// kill -9 loses what an OS crash would), --unsafe-disk-faults lets a test make the node's
// disk fail through POST /v1/internal/disk-faults. Neither belongs on a real node.

// unsafeFS builds the file system the flags ask for and the routes that steer it.
func unsafeFS(volatile, faults bool, log *slog.Logger) (vfs.FS, map[string]http.Handler) {
	var fs vfs.FS = vfs.OS{}
	if volatile {
		log.Warn("--unsafe-volatile-writes: written data is kept in memory until synced; for fault tests only")
		fs = vfs.NewVolatile(fs)
	}
	if !faults {
		return fs, nil
	}
	log.Warn("--unsafe-disk-faults: POST /v1/internal/disk-faults makes this node's disk fail; for fault tests only")
	faulty := vfs.NewFaulty(fs)
	h := diskFaults{fs: faulty, log: log}
	return faulty, map[string]http.Handler{
		"POST /v1/internal/disk-faults":   http.HandlerFunc(h.inject),
		"DELETE /v1/internal/disk-faults": http.HandlerFunc(h.clear),
		"GET /v1/internal/disk-faults":    http.HandlerFunc(h.fired),
	}
}

// diskFaultRequest is the body of POST /v1/internal/disk-faults.
type diskFaultRequest struct {
	Ops   string `json:"ops"`  // "write,sync", "read", "all"
	Path  string `json:"path"` // substring of the paths to fail, e.g. "orders-0/"
	Kind  string `json:"kind"` // error (default), short, bitflip
	After int    `json:"after"`
	Times int    `json:"times"`
	Err   string `json:"err"` // EIO (default) or ENOSPC
}

func (r diskFaultRequest) rule() (vfs.Rule, error) {
	ops, err := vfs.ParseOps(r.Ops)
	if err != nil {
		return vfs.Rule{}, err
	}
	rule := vfs.Rule{Ops: ops, Path: r.Path, After: r.After, Times: r.Times}
	switch r.Kind {
	case "", "error":
		rule.Kind = vfs.FaultError
	case "short":
		rule.Kind = vfs.FaultShortWrite
	case "bitflip":
		rule.Kind = vfs.FaultBitFlip
	default:
		return vfs.Rule{}, fmt.Errorf("unknown kind %q (error, short, bitflip)", r.Kind)
	}
	switch r.Err {
	case "", "EIO":
		rule.Err = syscall.EIO
	case "ENOSPC":
		rule.Err = syscall.ENOSPC
	default:
		return vfs.Rule{}, fmt.Errorf("unknown err %q (EIO, ENOSPC)", r.Err)
	}
	return rule, nil
}

type diskFaults struct {
	fs  *vfs.Faulty
	log *slog.Logger
}

func (h diskFaults) inject(w http.ResponseWriter, r *http.Request) {
	var req diskFaultRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	rule, err := req.rule()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.fs.Inject(rule)
	h.log.Warn("disk fault injected", "ops", rule.Ops.String(), "path", rule.Path, "kind", req.Kind, "err", rule.Err,
		"after", rule.After, "times", rule.Times, "client", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

func (h diskFaults) clear(w http.ResponseWriter, r *http.Request) {
	h.fs.Clear()
	h.log.Warn("disk faults cleared", "client", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

// fired answers how many faults have fired, so a test can tell an injected fault from one
// that never hit anything.
func (h diskFaults) fired(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"fired": h.fs.Fired()})
}
