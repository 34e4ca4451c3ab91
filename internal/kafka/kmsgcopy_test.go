package kafka

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The kmsg release third_party/kmsg copies, and its go.sum hash: the dirhash "h1" of the
// module's files (golang.org/x/mod/sumdb/dirhash.Hash1), which the checksum database
// vouches for.
const (
	kmsgModule  = "github.com/twmb/franz-go/pkg/kmsg"
	kmsgVersion = "v1.15.0"
	kmsgH1      = "h1:mILdOQm4JkWojbSYVQ7KJNJ1qMdYNsLrdNOBUVKM6IA="
	kmsgCopy    = "../../third_party/kmsg"
)

// kmsgPatch is the patch third_party/kmsg/PATCH.md documents, as (file, patched text,
// upstream text, times): undoing exactly these must give back the published module.
var kmsgPatch = []struct {
	file, patched, upstream string
	times                   int
}{
	{"generated.go", "for i := b.Uvarint(); i > 0 && b.Ok(); i-- {", "for i := b.Uvarint(); i > 0; i-- {", 19},
	{"api.go", "for num := b.Uvarint(); num > 0 && tagReaderOk(b); num-- {", "for num := b.Uvarint(); num > 0; num-- {", 2},
	{"api.go", "for num := b.Uvarint(); num > 0 && b.Ok(); num-- {", "for num := b.Uvarint(); num > 0; num-- {", 1},
	{"api.go", `// tagReaderOk reports whether b, if it can tell (kbin.Reader can), has not run out:
// a tag count read from the wire must not keep a loop going once the bytes are gone.
func tagReaderOk(b TagReader) bool {
	if r, ok := b.(interface{ Ok() bool }); ok {
		return r.Ok()
	}
	return true
}

`, "", 1},
}

// TestKmsgCopyIsUpstreamPlusPatch checks that third_party/kmsg, with the documented patch
// undone, hashes to the go.sum hash of the kmsg release go.mod requires: the copy is that
// release plus the patch and nothing else. It needs no module cache or network (CI
// builds with the replace and so never downloads upstream kmsg). It also checks that go.mod
// replaces kmsg with the copy and that no tag-count loop is left unpatched.
func TestKmsgCopyIsUpstreamPlusPatch(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(kmsgModule) + `\s+` + regexp.QuoteMeta(kmsgVersion) + `\s*$`).Match(gomod) {
		t.Fatalf("go.mod does not require %s %s, the release third_party/kmsg copies", kmsgModule, kmsgVersion)
	}
	if !regexp.MustCompile(`(?m)^replace\s+` + regexp.QuoteMeta(kmsgModule) + `\s+=>\s+\./third_party/kmsg\s*$`).Match(gomod) {
		t.Fatalf("go.mod does not replace %s with ./third_party/kmsg", kmsgModule)
	}
	if gosum, err := os.ReadFile("../../go.sum"); err == nil {
		line := kmsgModule + " " + kmsgVersion + " "
		for _, l := range strings.Split(string(gosum), "\n") {
			if strings.HasPrefix(l, line) && l != line+kmsgH1 {
				t.Fatalf("go.sum has %q, this test %s", l, kmsgH1)
			}
		}
	}

	files := map[string][]byte{}
	err = filepath.WalkDir(kmsgCopy, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(kmsgCopy, path)
		if rel == "PATCH.md" {
			return nil // ours, not the module's
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range kmsgPatch {
		s := string(files[p.file])
		if n := strings.Count(s, p.patched); n != p.times {
			t.Fatalf("%s: %d of %q, want %d", p.file, n, p.patched, p.times)
		}
		files[p.file] = []byte(strings.ReplaceAll(s, p.patched, p.upstream))
	}
	if got := dirHash1(kmsgModule+"@"+kmsgVersion, files); got != kmsgH1 {
		t.Fatalf("third_party/kmsg less its patch hashes to %s, %s %s is %s: the copy has changes PATCH.md does not document", got, kmsgModule, kmsgVersion, kmsgH1)
	}
	// Every loop over a tag count read from the wire checks the reader. Loops over
	// other counts are bounded by kbin.Reader.ArrayLen's check against the bytes left.
	unpatched := regexp.MustCompile(`for \w+ := b\.Uvarint\(\); \w+ > 0; \w+--`)
	for _, name := range []string{"generated.go", "api.go"} {
		b, err := os.ReadFile(filepath.Join(kmsgCopy, name))
		if err != nil {
			t.Fatal(err)
		}
		if m := unpatched.Find(b); m != nil {
			t.Fatalf("%s: an unpatched tag loop: %s", name, m)
		}
	}
}

// dirHash1 is the module hash go.sum records ("h1"): the SHA-256 of a listing of each
// file's SHA-256 and its name under prefix, in name order.
func dirHash1(prefix string, files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%x  %s\n", sha256.Sum256(files[name]), prefix+"/"+name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}
