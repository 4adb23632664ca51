package manager

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParseSettables: ParseSettables never panics and fails only with a
// 400. A parsed item reassembles into its input: Name, then "."+Field when
// the key had a field separator, then "="+Value when the input had an '='.
// In particular, for a key without '.', Name+"="+Value is the input. And
// applying the item to a plugin never panics and fails only with a 400.
func FuzzParseSettables(f *testing.F) {
	for _, seed := range []string{
		"DEBUG=3", "DEBUG", "DEBUG=", "data.source=/srv", "data.destination=/x", "a.b.c=1",
		".x=1", "a.=1", "x==y", "=x", "=", "", ".", "..", "a..b=c", "args=a   b",
		"nosrc.source=/tmp", "nopath.path=/dev/x", "multi=/x", "null=/dev/zero",
		"NOVALUE=z", "FIXED=1", "A\x00=1", "é.ü=ß",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		items, err := ParseSettables([]string{arg})
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseSettables(%q) error %v is not InvalidArgument", arg, err)
			}
			return
		}
		if len(items) != 1 {
			t.Fatalf("ParseSettables(%q) returned %d items", arg, len(items))
		}
		it := items[0]
		key, _, hasEq := strings.Cut(arg, "=")
		if it.Name == "" {
			t.Fatalf("ParseSettables(%q) gave an empty name", arg)
		}
		if !strings.Contains(key, ".") {
			if it.Field != "" || it.Name != key {
				t.Fatalf("ParseSettables(%q) = %+v: a key without '.' has no field", arg, it)
			}
			if hasEq && it.Name+"="+it.Value != arg {
				t.Fatalf("ParseSettables(%q) = %+v: Name=Value does not reassemble the input", arg, it)
			}
		}
		if strings.Contains(it.Field, ".") {
			t.Fatalf("ParseSettables(%q) = %+v: field contains '.'", arg, it)
		}
		re := it.Name
		if i := strings.LastIndexByte(key, '.'); i > 0 {
			re += "." + it.Field
		}
		if hasEq {
			re += "=" + it.Value
		} else if it.Value != "" {
			t.Fatalf("ParseSettables(%q) = %+v: value without '='", arg, it)
		}
		if re != arg {
			t.Fatalf("ParseSettables(%q) = %+v reassembles to %q", arg, it, re)
		}

		p := settablePlugin()
		if err := applySettable(&p, it); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("applySettable(%+v) error %v is not InvalidArgument", it, err)
		}
	})
}
