package pluginstore

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzResolve: Resolve never panics; it returns a record of the store or an
// error that is NotFound (404) or InvalidArgument (400), never anything
// else (which the server would turn into a 500).
func FuzzResolve(f *testing.F) {
	for _, seed := range []string{
		"spec-a", "spec-a:latest", "docker.io/library/spec-a:latest", "docker.io/spec-a",
		"library/spec-a", "index.docker.io/library/spec-a", idSpecA, idSpecA[:12],
		"spec-a:LATEST", "localhost:5000/big", "localhost:5000/big:1.0", "aaaa", "a",
		strings.Repeat("f", 64), "Spec-A", "", " ", "spec-a@sha256:" + strings.Repeat("0", 64),
		"spec-a:latest@sha256:" + strings.Repeat("0", 64), "spec-a@sha256:short",
		"../../etc/passwd", "x:", ":x", "a//b", "a/b/c/d/e:f", strings.Repeat("a", 300),
		"\x00", "localhost:99999/x", "[::1]:5000/x:1",
	} {
		f.Add(seed)
	}
	s, _ := openStore(f)
	for _, r := range []*Record{
		newRecord(idSpecA, "spec-a:latest"),
		newRecord(idBig, "localhost:5000/big:1.0"),
		newRecord(idA1, "twin-1:latest"),
		newRecord(idA2, "twin-2:latest"),
	} {
		if err := tryAdd(s, r); err != nil {
			f.Fatal(err)
		}
	}
	snap := s.Snapshot()
	f.Fuzz(func(t *testing.T, input string) {
		r, err := snap.Resolve(input)
		if err != nil {
			if r != nil {
				t.Fatalf("Resolve(%q) returned a record and an error", input)
			}
			if !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Resolve(%q) error %v is neither NotFound nor InvalidArgument", input, err)
			}
			return
		}
		if r == nil {
			t.Fatalf("Resolve(%q) returned neither a record nor an error", input)
		}
		if got, ok := snap.Get(r.ID()); !ok || got != r {
			t.Fatalf("Resolve(%q) returned a record that is not in the snapshot", input)
		}
	})
}
