package pluginstore

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// resolveStore holds spec-a:latest, localhost:5000/big:1.0 and two plugins
// whose IDs share the prefix "aaaa".
func resolveStore(t *testing.T) *Store {
	t.Helper()
	s, _ := openStore(t)
	for _, r := range []*Record{
		newRecord(idSpecA, "spec-a:latest"),
		newRecord(idBig, "localhost:5000/big:1.0"),
		newRecord(idA1, "twin-1:latest"),
		newRecord(idA2, "twin-2:latest"),
	} {
		addRecord(t, s, r)
	}
	return s
}

type errClass int

const (
	noError errClass = iota
	notFound
	invalid
)

func (c errClass) check(err error) bool {
	switch c {
	case noError:
		return err == nil
	case notFound:
		return errdefs.IsNotFound(err)
	case invalid:
		return errdefs.IsInvalidArgument(err)
	}
	return false
}

func (c errClass) String() string {
	return [...]string{"no error", "NotFound", "InvalidArgument"}[c]
}

func TestResolve(t *testing.T) {
	s := resolveStore(t).Snapshot()
	tests := []struct {
		name    string
		input   string
		wantID  string
		class   errClass
		wantMsg string // exact, when not ""
	}{
		// Every spelling dockerd accepts for spec-a:latest.
		{name: "familiar", input: "spec-a", wantID: idSpecA},
		{name: "familiar with tag", input: "spec-a:latest", wantID: idSpecA},
		{name: "fully qualified", input: "docker.io/library/spec-a:latest", wantID: idSpecA},
		{name: "domain without library", input: "docker.io/spec-a", wantID: idSpecA},
		{name: "library without domain", input: "library/spec-a", wantID: idSpecA},
		{name: "legacy index domain", input: "index.docker.io/library/spec-a", wantID: idSpecA},
		{name: "full ID", input: idSpecA, wantID: idSpecA},
		{name: "12-char ID prefix", input: idSpecA[:12], wantID: idSpecA},
		{name: "1-char ID prefix", input: "5", wantID: idSpecA},
		{name: "registry name with tag", input: "localhost:5000/big:1.0", wantID: idBig},
		{name: "full ID of one of two similar IDs", input: idA2, wantID: idA2},
		{name: "63-char prefix", input: idA1[:63], class: invalid, wantMsg: `multiple plugins found for "` + idA1[:63] + `"`},

		{name: "tag is case-sensitive", input: "spec-a:LATEST", class: notFound, wantMsg: `plugin "spec-a:LATEST" not found`},
		{name: "registry name needs its tag", input: "localhost:5000/big", class: notFound, wantMsg: `plugin "localhost:5000/big" not found`},
		{name: "other tag", input: "spec-a:1.0", class: notFound, wantMsg: `plugin "spec-a:1.0" not found`},
		{name: "ambiguous prefix", input: "aaaa", class: invalid, wantMsg: `multiple plugins found for "aaaa"`},
		{name: "unknown full ID", input: strings.Repeat("f", 64), class: notFound, wantMsg: `plugin "` + strings.Repeat("f", 64) + `" not found`},
		{name: "unknown prefix", input: "ffff", class: notFound, wantMsg: `plugin "ffff" not found`},
		{name: "unknown name", input: "nonexist", class: notFound, wantMsg: `plugin "nonexist" not found`},
		{name: "uppercase", input: "Spec-A", class: invalid},
		{name: "uppercase ID", input: strings.ToUpper(idSpecA), class: invalid},
		{name: "leading space", input: " spec-a", class: invalid},
		{name: "empty", input: "", class: invalid},
		{name: "digest reference", input: "spec-a@sha256:" + strings.Repeat("0", 64), class: invalid},
		{name: "tag and digest", input: "spec-a:latest@sha256:" + strings.Repeat("0", 64), class: invalid},
		{name: "hex longer than an ID", input: idSpecA + "0", class: notFound, wantMsg: `plugin "` + idSpecA + `0" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Resolve(tt.input)
			if !tt.class.check(err) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tt.input, err, tt.class)
			}
			if tt.class != noError {
				if r != nil {
					t.Errorf("Resolve(%q) returned record %s with an error", tt.input, r.Name())
				}
				if tt.wantMsg != "" && err.Error() != tt.wantMsg {
					t.Errorf("Resolve(%q) message = %q, want %q", tt.input, err.Error(), tt.wantMsg)
				}
				return
			}
			if r.ID() != tt.wantID {
				t.Errorf("Resolve(%q) = %s (%s), want ID %s", tt.input, r.ID(), r.Name(), tt.wantID)
			}
		})
	}
}

// TestResolveNameBeforePrefix: a name that is also an ID prefix resolves to
// the plugin of that name, as in dockerd (names are tried first).
func TestResolveNameBeforePrefix(t *testing.T) {
	s, _ := openStore(t)
	addRecord(t, s, newRecord(idA1, "twin-1:latest"))
	addRecord(t, s, newRecord(idSpecA, "aaaa:latest"))
	r, err := s.Snapshot().Resolve("aaaa")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != idSpecA {
		t.Errorf("Resolve(aaaa) = %s, want the plugin named aaaa:latest (%s)", r.ID(), idSpecA)
	}
	r, err = s.Snapshot().Resolve("aaa")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != idA1 {
		t.Errorf("Resolve(aaa) = %s, want the ID-prefix match %s", r.ID(), idA1)
	}
}

func TestResolveEmptyStore(t *testing.T) {
	s, _ := openStore(t)
	for _, in := range []string{"spec-a", "aaaa", strings.Repeat("a", 64)} {
		if _, err := s.Snapshot().Resolve(in); !errdefs.IsNotFound(err) {
			t.Errorf("Resolve(%q) on an empty store = %v, want NotFound", in, err)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    string
		wantErr bool
	}{
		{name: "familiar", input: "foo", want: "foo:latest"},
		{name: "qualified", input: "docker.io/library/foo", want: "foo:latest"},
		{name: "tagged", input: "docker.io/library/foo:bar", want: "foo:bar"},
		{name: "registry", input: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{name: "user repo", input: "user/foo:1", want: "user/foo:1"},
		{name: "uppercase", input: "Foo", wantErr: true},
		{name: "empty", input: "", wantErr: true},
		{name: "digest", input: "foo@sha256:" + strings.Repeat("0", 64), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeName(tt.input)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("NormalizeName(%q) = (%q, %v), want InvalidArgument", tt.input, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeName(%q) = (%q, %v), want %q", tt.input, got, err, tt.want)
			}
		})
	}
}

func TestIsID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "valid", in: idSpecA, want: true},
		{name: "short", in: idSpecA[:63], want: false},
		{name: "long", in: idSpecA + "a", want: false},
		{name: "uppercase", in: strings.ToUpper(idA1), want: false},
		{name: "non-hex", in: strings.Repeat("g", 64), want: false},
		{name: "empty", in: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsID(tt.in); got != tt.want {
				t.Errorf("IsID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if id := NewID(); !IsID(id) {
		t.Errorf("NewID() = %q is not an ID", id)
	}
	if a, b := NewID(), NewID(); a == b {
		t.Errorf("NewID returned %s twice", a)
	}
}
