package compat

import (
	"regexp"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParseFilters: ParseFilters never panics; it either fails with a 400
// or returns filters on which Validate, Bool and Values do not panic either.
func FuzzParseFilters(f *testing.F) {
	for _, seed := range []string{
		"", "{}", "null", "nope", "[]", `"x"`,
		`{"enabled":{"true":true}}`,
		`{"enabled":{"true":false}}`,
		`{"enabled":{}}`,
		`{"enabled":null}`,
		`{"enabled":{"false":true,"true":true}}`,
		`{"capability":["volumedriver"]}`,
		`{"capability":{"volume.*":true},"enabled":["1"]}`,
		`{"enable":["true"]}`,
		`{"enabled":[null]}`,
		`{"":{"":true}}`,
		`{"enabled":{"true":true}} trailing`,
		`{"a":{"b":true},"a":["c"]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		fs, err := ParseFilters(raw)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseFilters(%q) error %v is not InvalidArgument", raw, err)
			}
			return
		}
		if fs == nil {
			t.Fatalf("ParseFilters(%q) returned nil filters without an error", raw)
		}
		if err := fs.Validate("enabled", "capability"); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("Validate error %v is not InvalidArgument", err)
		}
		for k := range fs {
			if _, err := fs.Bool(k, false); err != nil && !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Bool(%q) error %v is not InvalidArgument", k, err)
			}
			prev := ""
			for i, v := range fs.Values(k) {
				if !fs[k][v] {
					t.Fatalf("Values(%q) returned %q, which is not set to true", k, v)
				}
				if i > 0 && v < prev {
					t.Fatalf("Values(%q) not sorted: %q after %q", k, v, prev)
				}
				prev = v
			}
		}
		_, _ = fs.Bool("enabled", true)
		_ = fs.Values("capability")
	})
}

var versionRE = regexp.MustCompile(`^[0-9.]+$`)

// FuzzSplitPath: SplitPath never panics; a versioned split reassembles into
// its input, with a version of digits and dots and a rest that starts a
// path; an unversioned split returns the input untouched.
func FuzzSplitPath(f *testing.F) {
	for _, seed := range []string{
		"/v1.41/plugins", "/v1.41.0/version", "/v01.41/x", "/vx/x", "/v1.4a/x",
		"/v1.41", "/plugins", "/v/x", "/v", "/", "", "v1/x", "/v1//x", "/v../x",
		"/v1.41/plugins/localhost:5000/x:1.0/set", "/v\u00e9/x", "/v1\x00/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		version, rest, ok := SplitPath(path)
		if !ok {
			if version != "" || rest != path {
				t.Fatalf("SplitPath(%q) = (%q, %q, false), want (\"\", input, false)", path, version, rest)
			}
			return
		}
		if "/v"+version+rest != path {
			t.Fatalf("SplitPath(%q) = (%q, %q): does not reassemble", path, version, rest)
		}
		if !versionRE.MatchString(version) {
			t.Fatalf("SplitPath(%q) version %q is not [0-9.]+", path, version)
		}
		if rest == "" || rest[0] != '/' {
			t.Fatalf("SplitPath(%q) rest %q does not start with '/'", path, rest)
		}
		// Whatever the version, checking it must not panic and must classify.
		if err := Check(version); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("Check(%q) error %v is not InvalidArgument", version, err)
		}
	})
}
