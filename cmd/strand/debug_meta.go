package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/vfs"
)

// metaReport is what `debug verify` could check of the metadata directory.
type metaReport struct {
	Snapshots int               `json:"snapshots"`
	Problems  []journal.Problem `json:"problems"`
	// NotChecked names what is left unchecked, and why.
	NotChecked string `json:"not_checked"`
}

// verifyMeta checks the metadata store under dataDir/meta/store (log, stable keys and
// snapshots, each record and file against its CRC-32C, with raftstore.Check), and the raft
// file snapshots older versions left under dataDir/meta/snapshots: each meta.json must parse
// and its CRC-64 (ECMA, as hashicorp/raft writes it) and size must match state.bin. An older
// version's raft log (meta/raft.db, bbolt) is not checked: opening it takes a file lock
// that a running node holds, and reading it without bbolt would mean reimplementing its page
// format.
func verifyMeta(dataDir string) metaReport {
	r := metaReport{NotChecked: "meta/raft.db (an older version's raft log) is not checked"}
	store := filepath.Join(dataDir, "meta", "store")
	if _, err := os.Stat(store); err == nil {
		if err := raftstore.Check(vfs.OS{}, store, filepath.Join(store, "snapshots")); err != nil {
			r.Problems = append(r.Problems, metaProblem(filepath.Join("meta", "store"), err.Error()))
		}
	}
	root := filepath.Join(dataDir, "meta", "snapshots")
	entries, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.Problems = append(r.Problems, metaProblem(root, err.Error()))
		}
		return r
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") { // .tmp: a snapshot being written
			continue
		}
		r.Snapshots++
		if p := verifyRaftSnapshot(filepath.Join(root, e.Name())); p != "" {
			r.Problems = append(r.Problems, metaProblem(filepath.Join("meta", "snapshots", e.Name()), p))
		}
	}
	return r
}

func metaProblem(file, detail string) journal.Problem {
	return journal.Problem{Kind: journal.KindDamage, File: file, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: detail}
}

// verifyRaftSnapshot returns what is wrong with one snapshot directory, "" when nothing.
func verifyRaftSnapshot(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return err.Error()
	}
	var meta struct {
		ID   string
		Size int64
		CRC  []byte
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Sprintf("meta.json: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "state.bin"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	switch {
	case err != nil:
		return fmt.Sprintf("state.bin: %v", err)
	case n != meta.Size:
		return fmt.Sprintf("state.bin has %d bytes, meta.json says %d", n, meta.Size)
	case !bytes.Equal(h.Sum(nil), meta.CRC):
		return fmt.Sprintf("state.bin CRC-64 %x, meta.json says %x", h.Sum(nil), meta.CRC)
	}
	return ""
}
