package compat

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestParseFilters(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    Filters
		wantErr string // "" for no error
	}{
		{name: "empty string", raw: "", want: Filters{}},
		{name: "empty object", raw: "{}", want: Filters{}},
		{name: "null", raw: "null", want: Filters{}},
		{name: "map of bools", raw: `{"enabled":{"true":true}}`,
			want: Filters{"enabled": {"true": true}}},
		{name: "map of bools as the CLI sends it",
			raw:  `{"capability":{"volumedriver":true},"enabled":{"false":true,"true":true}}`,
			want: Filters{"capability": {"volumedriver": true}, "enabled": {"false": true, "true": true}}},
		{name: "value mapped to false is kept", raw: `{"enabled":{"true":false}}`,
			want: Filters{"enabled": {"true": false}}},
		{name: "legacy map of lists", raw: `{"capability":["volumedriver"]}`,
			want: Filters{"capability": {"volumedriver": true}}},
		{name: "legacy map of lists, several values", raw: `{"capability":["volumedriver","authz"]}`,
			want: Filters{"capability": {"volumedriver": true, "authz": true}}},
		{name: "legacy empty list", raw: `{"capability":[]}`,
			want: Filters{"capability": {}}},
		{name: "null set is an empty set", raw: `{"enabled":null}`,
			want: Filters{"enabled": {}}},
		{name: "empty set", raw: `{"enabled":{}}`,
			want: Filters{"enabled": {}}},
		{name: "junk", raw: "nope", wantErr: "invalid filter"},
		{name: "truncated", raw: `{"enabled":`, wantErr: "invalid filter"},
		{name: "array", raw: `[]`, wantErr: "invalid filter"},
		{name: "string", raw: `"x"`, wantErr: "invalid filter"},
		{name: "string value", raw: `{"enabled":"true"}`, wantErr: "invalid filter"},
		{name: "list of numbers", raw: `{"enabled":[1]}`, wantErr: "invalid filter"},
		{name: "too long", raw: `{"k":["` + strings.Repeat("x", 64<<10) + `"]}`, wantErr: "invalid filter: too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilters(tt.raw)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseFilters(%q) = %v, want error %q", tt.raw, got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("ParseFilters error = %q, want %q", err.Error(), tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("ParseFilters error %q is not InvalidArgument (400)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilters(%q): %v", tt.raw, err)
			}
			if got == nil {
				t.Fatalf("ParseFilters(%q) returned a nil map", tt.raw)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFilters(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

// TestParseFiltersCopies checks that each parse returns maps of its own, so a
// caller may modify them.
func TestParseFiltersCopies(t *testing.T) {
	const raw = `{"enabled":{"true":true}}`
	a, err := ParseFilters(raw)
	if err != nil {
		t.Fatal(err)
	}
	a["enabled"]["false"] = true
	b, err := ParseFilters(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Filters{"enabled": {"true": true}}, b); diff != "" {
		t.Errorf("second parse sees the first one's change (-want +got):\n%s", diff)
	}
}

func TestFiltersValidate(t *testing.T) {
	accepted := []string{"enabled", "capability"}
	tests := []struct {
		name    string
		f       Filters
		wantErr string
	}{
		{name: "none", f: Filters{}},
		{name: "nil", f: nil},
		{name: "accepted keys", f: Filters{"enabled": {"true": true}, "capability": {"authz": true}}},
		{name: "swagger spelling", f: Filters{"enable": {"true": true}}, wantErr: "invalid filter 'enable'"},
		{name: "case matters", f: Filters{"Enabled": {"true": true}}, wantErr: "invalid filter 'Enabled'"},
		{name: "first unknown key in sorted order", f: Filters{"zz": {}, "bb": {}, "enabled": {}}, wantErr: "invalid filter 'bb'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate(accepted...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Validate error is not InvalidArgument")
			}
		})
	}
}

func TestFiltersValues(t *testing.T) {
	tests := []struct {
		name string
		f    Filters
		key  string
		want []string
	}{
		{name: "absent", f: Filters{}, key: "capability", want: nil},
		{name: "sorted", f: Filters{"capability": {"volumedriver": true, "authz": true}}, key: "capability", want: []string{"authz", "volumedriver"}},
		{name: "false values dropped", f: Filters{"capability": {"volumedriver": false, "authz": true}}, key: "capability", want: []string{"authz"}},
		{name: "only false values", f: Filters{"capability": {"volumedriver": false}}, key: "capability", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.f.Values(tt.key)); diff != "" {
				t.Errorf("Values(%q) mismatch (-want +got):\n%s", tt.key, diff)
			}
		})
	}
}

func TestFiltersBool(t *testing.T) {
	tests := []struct {
		name    string
		f       Filters
		def     bool
		want    bool
		wantErr string
	}{
		{name: "absent gives default false", f: Filters{}, def: false, want: false},
		{name: "absent gives default true", f: Filters{}, def: true, want: true},
		{name: "true", f: Filters{"enabled": {"true": true}}, want: true},
		{name: "1", f: Filters{"enabled": {"1": true}}, want: true},
		{name: "TRUE", f: Filters{"enabled": {"TRUE": true}}, want: true},
		{name: "true and 1 agree", f: Filters{"enabled": {"true": true, "1": true}}, want: true},
		{name: "false", f: Filters{"enabled": {"false": true}}, def: true, want: false},
		{name: "0", f: Filters{"enabled": {"0": true}}, def: true, want: false},
		{name: "False", f: Filters{"enabled": {"False": true}}, def: true, want: false},
		{name: "both", f: Filters{"enabled": {"true": true, "false": true}},
			wantErr: "invalid filter 'enabled=[false true]'"},
		{name: "1 and 0", f: Filters{"enabled": {"1": true, "0": true}},
			wantErr: "invalid filter 'enabled=[0 1]'"},
		{name: "empty set", f: Filters{"enabled": {}}, wantErr: "invalid filter 'enabled'"},
		{name: "unknown value", f: Filters{"enabled": {"maybe": true}}, wantErr: "invalid filter 'enabled=[maybe]'"},
		{name: "yes is not a bool here", f: Filters{"enabled": {"yes": true}}, wantErr: "invalid filter 'enabled=[yes]'"},
		{name: "value mapped to false", f: Filters{"enabled": {"true": false}}, wantErr: "invalid filter 'enabled=[true]'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.Bool("enabled", tt.def)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Bool = %v, want error %q", got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("Bool error = %q, want %q", err.Error(), tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("Bool error is not InvalidArgument")
				}
				return
			}
			if err != nil {
				t.Fatalf("Bool: %v", err)
			}
			if got != tt.want {
				t.Errorf("Bool = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestParseFiltersThenBool runs the wire forms end to end, as the list
// handler does.
func TestParseFiltersThenBool(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    bool
		wantErr string
	}{
		{name: "map of bools", raw: `{"enabled":{"true":true}}`, want: true},
		{name: "legacy list", raw: `{"enabled":["false"]}`, want: false},
		{name: "CLI sends both", raw: `{"enabled":{"false":true,"true":true}}`, wantErr: "invalid filter 'enabled=[false true]'"},
		{name: "stored false", raw: `{"enabled":{"true":false}}`, wantErr: "invalid filter 'enabled=[true]'"},
		{name: "legacy number string", raw: `{"enabled":["1"]}`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFilters(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Bool("enabled", false)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Bool = (%v, %v), want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Bool = (%v, %v), want (%v, nil)", got, err, tt.want)
			}
		})
	}
}
