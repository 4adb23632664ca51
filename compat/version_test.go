package compat

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{name: "equal", a: "1.41", b: "1.41", want: 0},
		{name: "trailing zero component", a: "1.41.0", b: "1.41", want: 0},
		{name: "trailing zero component reversed", a: "1.41", b: "1.41.0", want: 0},
		{name: "leading zero", a: "01.41", b: "1.41", want: 0},
		{name: "numeric not lexical", a: "1.9", b: "1.10", want: -1},
		{name: "numeric not lexical reversed", a: "1.10", b: "1.9", want: 1},
		{name: "major wins", a: "2.0", b: "1.99", want: 1},
		{name: "extra non-zero component", a: "1.41.1", b: "1.41", want: 1},
		{name: "empty equals zero", a: "", b: "0", want: 0},
		{name: "non-numeric component counts as zero", a: "1.x", b: "1.0", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(tt.a, tt.b); got != tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := Compare(tt.b, tt.a); got != -tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
			}
			if got := LessThan(tt.a, tt.b); got != (tt.want < 0) {
				t.Errorf("LessThan(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		wantVersion string
		wantRest    string
		wantOK      bool
	}{
		{name: "versioned", path: "/v1.41/plugins", wantVersion: "1.41", wantRest: "/plugins", wantOK: true},
		{name: "three components", path: "/v1.41.0/version", wantVersion: "1.41.0", wantRest: "/version", wantOK: true},
		{name: "leading zero", path: "/v01.41/x", wantVersion: "01.41", wantRest: "/x", wantOK: true},
		{name: "deep rest", path: "/v1.41/plugins/localhost:5000/x:1.0/set", wantVersion: "1.41", wantRest: "/plugins/localhost:5000/x:1.0/set", wantOK: true},
		{name: "rest is a slash", path: "/v1.41/", wantVersion: "1.41", wantRest: "/", wantOK: true},
		{name: "letters", path: "/vx/x", wantRest: "/vx/x"},
		{name: "letter inside version", path: "/v1.4a/x", wantRest: "/v1.4a/x"},
		{name: "version alone", path: "/v1.41", wantRest: "/v1.41"},
		{name: "unversioned", path: "/plugins", wantRest: "/plugins"},
		{name: "empty version", path: "/v/x", wantRest: "/v/x"},
		{name: "v alone", path: "/v", wantRest: "/v"},
		{name: "root", path: "/", wantRest: "/"},
		{name: "empty", path: "", wantRest: ""},
		{name: "no leading slash", path: "v1.41/x", wantRest: "v1.41/x"},
		{name: "uppercase V", path: "/V1.41/x", wantRest: "/V1.41/x"},
		{name: "version word", path: "/version", wantRest: "/version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, rest, ok := SplitPath(tt.path)
			if v != tt.wantVersion || rest != tt.wantRest || ok != tt.wantOK {
				t.Errorf("SplitPath(%q) = (%q, %q, %v), want (%q, %q, %v)",
					tt.path, v, rest, ok, tt.wantVersion, tt.wantRest, tt.wantOK)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		version string
		wantErr string // "" for no error
	}{
		{name: "default", version: ""},
		{name: "minimum", version: "1.24"},
		{name: "maximum", version: "1.57"},
		{name: "maximum with zero patch", version: "1.57.0"},
		{name: "reference daemon", version: "1.41"},
		{name: "too old", version: "1.23",
			wantErr: "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{name: "very old", version: "1.12",
			wantErr: "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{name: "too new", version: "1.58",
			wantErr: "client version 1.58 is too new. Maximum supported API version is 1.57"},
		{name: "too new by patch", version: "1.57.1",
			wantErr: "client version 1.57.1 is too new. Maximum supported API version is 1.57"},
		{name: "too new major", version: "2.0",
			wantErr: "client version 2.0 is too new. Maximum supported API version is 1.57"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.version)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.version, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q) = nil, want %q", tt.version, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Check(%q) message:\n got %q\nwant %q", tt.version, err.Error(), tt.wantErr)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Check(%q): errdefs.IsInvalidArgument = false, want true", tt.version)
			}
		})
	}
}

func TestVersionPredicates(t *testing.T) {
	tests := []struct {
		name            string
		version         string
		plainText       bool
		dockerVersion   bool
		upgradeRoute    bool
		contextReturned string
	}{
		{name: "default", version: "", plainText: false, dockerVersion: false, upgradeRoute: true, contextReturned: MaxAPIVersion},
		{name: "1.12", version: "1.12", plainText: true, dockerVersion: true, upgradeRoute: false, contextReturned: "1.12"},
		{name: "1.23", version: "1.23", plainText: true, dockerVersion: true, upgradeRoute: false, contextReturned: "1.23"},
		{name: "1.24", version: "1.24", plainText: false, dockerVersion: true, upgradeRoute: false, contextReturned: "1.24"},
		{name: "1.26", version: "1.26", plainText: false, dockerVersion: true, upgradeRoute: true, contextReturned: "1.26"},
		{name: "1.41", version: "1.41", plainText: false, dockerVersion: true, upgradeRoute: true, contextReturned: "1.41"},
		{name: "1.50", version: "1.50", plainText: false, dockerVersion: true, upgradeRoute: true, contextReturned: "1.50"},
		{name: "1.51", version: "1.51", plainText: false, dockerVersion: false, upgradeRoute: true, contextReturned: "1.51"},
		{name: "1.57", version: "1.57", plainText: false, dockerVersion: false, upgradeRoute: true, contextReturned: "1.57"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlainTextErrors(tt.version); got != tt.plainText {
				t.Errorf("PlainTextErrors(%q) = %v, want %v", tt.version, got, tt.plainText)
			}
			if got := ShowsDockerVersion(tt.version); got != tt.dockerVersion {
				t.Errorf("ShowsDockerVersion(%q) = %v, want %v", tt.version, got, tt.dockerVersion)
			}
			if got := UpgradeSupported(tt.version); got != tt.upgradeRoute {
				t.Errorf("UpgradeSupported(%q) = %v, want %v", tt.version, got, tt.upgradeRoute)
			}
			ctx := WithVersion(t.Context(), tt.version)
			if got := VersionFromContext(ctx); got != tt.contextReturned {
				t.Errorf("VersionFromContext(WithVersion(%q)) = %q, want %q", tt.version, got, tt.contextReturned)
			}
		})
	}
}

func TestVersionFromContextWithoutVersion(t *testing.T) {
	if got := VersionFromContext(context.Background()); got != MaxAPIVersion {
		t.Errorf("VersionFromContext(empty context) = %q, want %q", got, MaxAPIVersion)
	}
}
