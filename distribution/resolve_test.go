package distribution

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestResolvePlugin(t *testing.T) {
	f := newFakeRegistry(t)
	m := f.putPlugin("sample", "1.0")
	c := newTestClient(t, Options{})

	for _, ref := range []string{f.host() + "/sample:1.0", f.host() + "/sample@" + m.Digest.String()} {
		t.Run(ref, func(t *testing.T) {
			res, err := c.Resolve(t.Context(), target(t, ref))
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != m.Digest || res.Manifest.Digest != m.Digest || res.Manifest.MediaType != MediaTypeManifest {
				t.Errorf("digest %s manifest %+v, want %s", res.Digest, res.Manifest, m.Digest)
			}
			if digest.FromBytes(res.ManifestBytes) != m.Digest {
				t.Error("manifest bytes do not match the digest")
			}
			if res.Config.MediaType != MediaTypePluginConfig || !bytes.Contains(res.ConfigBytes, []byte(`"p.sock"`)) {
				t.Errorf("config %+v %s", res.Config, res.ConfigBytes)
			}
			if len(res.Layers) != 1 {
				t.Errorf("layers %+v", res.Layers)
			}
		})
	}
}

func TestResolveDefaultsToLatest(t *testing.T) {
	f := newFakeRegistry(t)
	m := f.putPlugin("x", "latest")
	res, err := newTestClient(t, Options{}).Resolve(t.Context(), target(t, f.host()+"/x"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != m.Digest {
		t.Errorf("got %s want %s", res.Digest, m.Digest)
	}
}

// B02: a plugin published behind an OCI index or a docker manifest list is
// found through the entry for this platform.
func TestResolveIndex(t *testing.T) {
	f := newFakeRegistry(t)
	amd := f.putPlugin("multi", "")
	arm := f.putPlugin("multi-arm", "") // different content, same repo below
	f.putManifest("multi", "", MediaTypeManifest, f.manifests["multi-arm@"+arm.Digest.String()].body)
	armv6 := arm
	armv6.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	arm64 := arm
	arm64.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	attest := arm
	attest.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}

	for _, mt := range []string{ocispec.MediaTypeImageIndex, MediaTypeManifestList} {
		idx := f.putManifest("multi", "tag", mt, indexJSON(mt, arm64, attest, amd, armv6))
		tests := []struct {
			name     string
			platform ocispec.Platform
			want     digest.Digest
			wantErr  string
		}{
			{"amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, amd.Digest, ""},
			{"x86_64 alias", ocispec.Platform{OS: "Linux", Architecture: "x86_64"}, amd.Digest, ""},
			{"arm64 without variant matches v8", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, arm.Digest, ""},
			{"armv7 runs v6", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, arm.Digest, ""},
			{"armv5 does not run v6", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}, "", "no plugin for platform linux/arm/v5 in " + f.host() + "/multi:tag"},
			{"no match", ocispec.Platform{OS: "linux", Architecture: "s390x"}, "", "no plugin for platform linux/s390x in " + f.host() + "/multi:tag"},
		}
		for _, tt := range tests {
			t.Run(mt+"/"+tt.name, func(t *testing.T) {
				c := newTestClient(t, Options{Platform: tt.platform})
				res, err := c.Resolve(t.Context(), target(t, f.host()+"/multi:tag"))
				if tt.wantErr != "" {
					if !errdefs.IsNotFound(err) || err.Error() != tt.wantErr {
						t.Fatalf("err = %v (%T), want NotFound %q", err, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Digest != idx.Digest {
					t.Errorf("Digest = %s, want the index's %s", res.Digest, idx.Digest)
				}
				if res.Manifest.Digest != tt.want || res.Manifest.Platform == nil {
					t.Errorf("Manifest = %+v, want %s with its platform", res.Manifest, tt.want)
				}
				if digest.FromBytes(res.ManifestBytes) != tt.want {
					t.Error("ManifestBytes are not the chosen manifest")
				}
			})
		}
	}
}

func TestResolveRejects(t *testing.T) {
	f := newFakeRegistry(t)
	plugin := f.putPlugin("p", "1.0")
	layer := f.putBlob("application/vnd.docker.image.rootfs.diff.tar.gzip", []byte("layer"))
	imageCfg := f.putBlob("application/vnd.docker.container.image.v1+json", []byte(`{"architecture":"amd64"}`))
	pluginCfg := f.putBlob(MediaTypePluginConfig, []byte(`{}`))

	f.putManifest("image", "1.0", MediaTypeManifest, manifestJSON(MediaTypeManifest, imageCfg, layer))
	f.putManifest("schema1", "1.0", mediaTypeSchema1Signed, []byte(`{"schemaVersion":1,"name":"schema1","tag":"1.0","fsLayers":[]}`))
	f.putManifest("unknown", "1.0", "application/vnd.example+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.example+json"}`))
	f.putManifest("badjson", "1.0", MediaTypeManifest, []byte(`{"schemaVersion":`))
	f.putManifest("mismatch", "1.0", ocispec.MediaTypeImageManifest, manifestJSON(MediaTypeManifest, pluginCfg, layer))
	many := make([]ocispec.Descriptor, MaxLayers+1)
	for i := range many {
		many[i] = layer
	}
	f.putManifest("layers", "1.0", MediaTypeManifest, manifestJSON(MediaTypeManifest, pluginCfg, many...))
	bigCfg := ocispec.Descriptor{MediaType: MediaTypePluginConfig, Digest: digest.FromString("x"), Size: MaxConfigSize + 1}
	f.putManifest("bigconfig", "1.0", MediaTypeManifest, manifestJSON(MediaTypeManifest, bigCfg, layer))
	f.putManifest("bigmanifest", "1.0", MediaTypeManifest, append(manifestJSON(MediaTypeManifest, pluginCfg, layer), bytes.Repeat([]byte(" "), MaxManifestSize)...))
	nested := f.putManifest("nested", "", ocispec.MediaTypeImageIndex, indexJSON(ocispec.MediaTypeImageIndex, plugin))
	nested.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	f.putManifest("nested", "1.0", ocispec.MediaTypeImageIndex, indexJSON(ocispec.MediaTypeImageIndex, nested))
	imageManifest := f.putManifest("imageidx", "", MediaTypeManifest, manifestJSON(MediaTypeManifest, imageCfg, layer))
	imageManifest.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	f.putManifest("imageidx", "1.0", ocispec.MediaTypeImageIndex, indexJSON(ocispec.MediaTypeImageIndex, imageManifest))

	h := f.host()
	tests := []struct {
		repo    string
		is      func(error) bool
		wantMsg string
	}{
		// B17: an image is refused clearly.
		{"image", errdefs.IsInvalidArgument, h + "/image:1.0 is not a plugin: its config media type is application/vnd.docker.container.image.v1+json"},
		{"imageidx", errdefs.IsInvalidArgument, h + "/imageidx:1.0 is not a plugin: its config media type is application/vnd.docker.container.image.v1+json"},
		{"schema1", errdefs.IsInvalidArgument, "schema1 manifests are not supported"},
		{"unknown", errdefs.IsInvalidArgument, `unsupported manifest media type "application/vnd.example+json"`},
		{"badjson", errdefs.IsInvalidArgument, "invalid manifest"},
		{"mismatch", errdefs.IsInvalidArgument, "manifest says it is application/vnd.docker.distribution.manifest.v2+json but was served as application/vnd.oci.image.manifest.v1+json"},
		{"layers", errdefs.IsResourceExhausted, "has 257 layers, more than the limit of 256"},
		{"bigconfig", errdefs.IsResourceExhausted, "over the limit of 1048576"},
		{"bigmanifest", errdefs.IsResourceExhausted, "limit"},
		{"nested", errdefs.IsInvalidArgument, "nested index"},
		{"nosuch", errdefs.IsNotFound, h + "/nosuch:1.0: not found"},
	}
	c := newTestClient(t, Options{})
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			_, err := c.Resolve(t.Context(), target(t, h+"/"+tt.repo+":1.0"))
			if err == nil || !tt.is(err) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want class and message %q", err, tt.wantMsg)
			}
		})
	}
}

// Never trust the registry: what it serves must hash to what was asked for
// (by digest) or to what it announced (by tag).
func TestResolveTamperedContent(t *testing.T) {
	f := newFakeRegistry(t)
	m := f.putPlugin("p", "1.0")
	other := f.putPlugin("q", "1.0")
	c := newTestClient(t, Options{})
	h := f.host()

	tests := []struct {
		name string
		ref  string
		hook func(w http.ResponseWriter, r *http.Request) bool
	}{
		{"by digest, other body, honest header", h + "/p@" + m.Digest.String(), serveAt("/v2/p/manifests/"+m.Digest.String(), f.manifests["q@1.0"].body, other.Digest, MediaTypeManifest)},
		{"by digest, other body, lying header", h + "/p@" + m.Digest.String(), serveAt("/v2/p/manifests/"+m.Digest.String(), f.manifests["q@1.0"].body, m.Digest, MediaTypeManifest)},
		{"by tag, body does not match header", h + "/p:1.0", serveAt("/v2/p/manifests/1.0", f.manifests["q@1.0"].body, m.Digest, MediaTypeManifest)},
		{"config corrupted", h + "/p:1.0", corruptBlob(f, "p")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setHook(tt.hook)
			defer f.setHook(nil)
			_, err := c.Resolve(t.Context(), target(t, tt.ref))
			if !errdefs.IsDataLoss(err) {
				t.Fatalf("err = %v, want DataLoss", err)
			}
		})
	}
}

// serveAt answers GET/HEAD of path with body and the given digest header.
func serveAt(path string, body []byte, dgst digest.Digest, mediaType string) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path {
			return false
		}
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", dgst.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
		return true
	}
}

// corruptBlob serves the config of repo's 1.0 manifest with one byte flipped.
func corruptBlob(f *fakeRegistry, repo string) func(w http.ResponseWriter, r *http.Request) bool {
	var m struct{ Config ocispec.Descriptor }
	if err := json.Unmarshal(f.manifests[repo+"@1.0"].body, &m); err != nil {
		panic(err)
	}
	body := bytes.Clone(f.blobs[m.Config.Digest])
	body[0] ^= 0xff
	return serveAt("/v2/"+repo+"/blobs/"+m.Config.Digest.String(), body, m.Config.Digest, "application/octet-stream")
}

func TestNormalizePlatform(t *testing.T) {
	tests := []struct{ in, want ocispec.Platform }{
		{ocispec.Platform{OS: "linux", Architecture: "x86_64"}, ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{ocispec.Platform{OS: "linux", Architecture: "aarch64"}, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{ocispec.Platform{OS: "linux", Architecture: "armhf"}, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "6"}, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
	}
	for _, tt := range tests {
		if got := normalizePlatform(tt.in); got.OS != tt.want.OS || got.Architecture != tt.want.Architecture || got.Variant != tt.want.Variant {
			t.Errorf("normalizePlatform(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
