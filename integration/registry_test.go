package integration

// Registry tests: pluginsd's registry client (package distribution) against
// the real distribution v3 registry running in-process (registrytest), with
// no auth, htpasswd and token auth.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/integration/registrytest"
)

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// registryPluginConfig is a minimal plugin config blob.
const registryPluginConfig = `{"Description":"registry test plugin","Documentation":"","Entrypoint":["/plugin"],` +
	`"Interface":{"Socket":"plugin.sock","Types":["docker.volumedriver/1.0"]},"Network":{"Type":"host"},` +
	`"Linux":{"Capabilities":["CAP_SYS_ADMIN"]},"rootfs":{"type":"layers","diff_ids":[]}}`

// registryLayer is a one-file rootfs tar.
func registryLayer(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "plugin", Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func registryClient(t *testing.T, platform ocispec.Platform) *distribution.Client {
	t.Helper()
	c, err := distribution.New(distribution.Options{Platform: platform, CertsDir: t.TempDir(), UserAgent: "pluginsd-integration"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func registryTarget(t *testing.T, ref string, auth distribution.Auth) distribution.Target {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatal(err)
	}
	return distribution.Target{Ref: named, Auth: auth}
}

// fetchAll reads a blob through FetchBlob.
func fetchAll(t *testing.T, c *distribution.Client, tg distribution.Target, desc ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := c.FetchBlob(t.Context(), tg, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPlugin resolves ref and checks it is the plugin pushed as manifest
// dgst with layer content.
func checkPlugin(t *testing.T, c *distribution.Client, tg distribution.Target, dgst digest.Digest, layerTar []byte) *distribution.Resolved {
	t.Helper()
	res, err := c.Resolve(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != dgst || digest.FromBytes(res.ManifestBytes) != dgst {
		t.Errorf("manifest %s, want %s", res.Manifest.Digest, dgst)
	}
	if res.Config.MediaType != distribution.MediaTypePluginConfig || string(res.ConfigBytes) != registryPluginConfig {
		t.Errorf("config %+v: %s", res.Config, res.ConfigBytes)
	}
	if len(res.Layers) != 1 {
		t.Fatalf("layers %+v", res.Layers)
	}
	zr, err := gzip.NewReader(bytes.NewReader(fetchAll(t, c, tg, res.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, layerTar) {
		t.Errorf("layer content differs (err %v)", err)
	}
	return res
}

func TestRegistryNoAuth(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	layer := registryLayer(t, "no auth")
	dgst := reg.PushPlugin(t, "sample:1.0", []byte(registryPluginConfig), layer)
	c := registryClient(t, linuxAMD64)

	res := checkPlugin(t, c, registryTarget(t, reg.Ref("sample:1.0"), distribution.Auth{}), dgst, layer)
	if res.Digest != dgst || res.Manifest.MediaType != distribution.MediaTypeManifest {
		t.Errorf("resolved %+v", res.Manifest)
	}
	// B01: the same plugin by digest, and by tag and digest
	checkPlugin(t, c, registryTarget(t, reg.Ref("sample@"+dgst.String()), distribution.Auth{}), dgst, layer)
	checkPlugin(t, c, registryTarget(t, reg.Ref("sample:1.0@"+dgst.String()), distribution.Auth{}), dgst, layer)

	_, err := c.Resolve(t.Context(), registryTarget(t, reg.Ref("nosuch:1.0"), distribution.Auth{}))
	if !errdefs.IsNotFound(err) || err.Error() != reg.Host+"/nosuch:1.0: not found" {
		t.Errorf("unknown repository: %v", err)
	}
	_, err = c.Resolve(t.Context(), registryTarget(t, reg.Ref("sample:2.0"), distribution.Auth{}))
	if !errdefs.IsNotFound(err) {
		t.Errorf("unknown tag: %v", err)
	}
	_, err = c.Resolve(t.Context(), registryTarget(t, reg.Ref("sample@"+digest.FromString("x").String()), distribution.Auth{}))
	if !errdefs.IsNotFound(err) {
		t.Errorf("unknown digest: %v", err)
	}
}

// Push with the client, then resolve and fetch what was pushed: the flow of
// `docker plugin push` followed by an install elsewhere.
func TestRegistryPushRoundTrip(t *testing.T) {
	for _, mode := range []string{registrytest.AuthNone, registrytest.AuthHtpasswd, registrytest.AuthToken} {
		t.Run("auth="+mode, func(t *testing.T) {
			reg := registrytest.New(t, registrytest.Options{Auth: mode, Users: map[string]string{"alice": "s3cret"}})
			c := registryClient(t, linuxAMD64)
			var auth distribution.Auth
			if mode != registrytest.AuthNone {
				auth = distribution.Auth{Username: "alice", Password: "s3cret"}
			}
			tg := registryTarget(t, reg.Ref("pushed:1.0"), auth)
			ctx := t.Context()

			var zbuf bytes.Buffer
			zw := gzip.NewWriter(&zbuf)
			layerTar := registryLayer(t, "pushed")
			zw.Write(layerTar)
			zw.Close()
			blobs := []struct {
				desc ocispec.Descriptor
				data []byte
			}{
				{ocispec.Descriptor{MediaType: distribution.MediaTypePluginConfig, Digest: digest.FromString(registryPluginConfig), Size: int64(len(registryPluginConfig))}, []byte(registryPluginConfig)},
				{ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromBytes(zbuf.Bytes()), Size: int64(zbuf.Len())}, zbuf.Bytes()},
			}
			for _, b := range blobs {
				ok, err := c.BlobExists(ctx, tg, b.desc)
				if err != nil || ok {
					t.Fatalf("BlobExists before push: %v %v", ok, err)
				}
				if err := c.PushBlob(ctx, tg, b.desc, bytes.NewReader(b.data)); err != nil {
					t.Fatal(err)
				}
				if ok, err := c.BlobExists(ctx, tg, b.desc); err != nil || !ok {
					t.Fatalf("BlobExists after push: %v %v", ok, err)
				}
			}
			manifest := []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.plugin.v1+json","digest":"` +
				blobs[0].desc.Digest.String() + `","size":` + strconv.FormatInt(blobs[0].desc.Size, 10) + `},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` +
				blobs[1].desc.Digest.String() + `","size":` + strconv.FormatInt(blobs[1].desc.Size, 10) + `}],"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`)
			if err := c.PushManifest(ctx, tg, "1.0", distribution.MediaTypeManifest, manifest); err != nil {
				t.Fatal(err)
			}
			checkPlugin(t, c, tg, digest.FromBytes(manifest), layerTar)

			// a corrupt local blob never reaches the registry
			bad := blobs[1].desc
			bad.Digest = digest.FromString("something else")
			if err := c.PushBlob(ctx, tg, bad, bytes.NewReader(blobs[1].data)); !errdefs.IsDataLoss(err) {
				t.Errorf("corrupt push: %v", err)
			}

			if mode == registrytest.AuthToken {
				reqs := reg.TokenRequests()
				if len(reqs) == 0 {
					t.Fatal("no token requests")
				}
				want := []string{"repository(plugin):pushed:pull,push", "repository:pushed:pull,push"}
				if r := reqs[0]; !slices.Equal(r.Scopes, want) || r.Status != 200 || r.GrantType != "password" {
					t.Errorf("push token request %+v, want scopes %v", r, want)
				}
			}
		})
	}
}

func TestRegistryHtpasswd(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{Auth: registrytest.AuthHtpasswd, Users: map[string]string{"alice": "s3cret"}})
	layer := registryLayer(t, "htpasswd")
	dgst := reg.PushPlugin(t, "private:1.0", []byte(registryPluginConfig), layer)
	c := registryClient(t, linuxAMD64)

	checkPlugin(t, c, registryTarget(t, reg.Ref("private:1.0"), distribution.Auth{Username: "alice", Password: "s3cret"}), dgst, layer)
	for name, auth := range map[string]distribution.Auth{
		"wrong password": {Username: "alice", Password: "wrong"},
		"unknown user":   {Username: "mallory", Password: "s3cret"},
		"anonymous":      {},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Resolve(t.Context(), registryTarget(t, reg.Ref("private:1.0"), auth))
			if !errdefs.IsUnauthorized(err) {
				t.Fatalf("err = %v, want Unauthenticated", err)
			}
		})
	}
}

// B15, B16: token auth, with the scopes, grant types and credential kinds
// dockerd uses, against the real token controller of the registry.
func TestRegistryTokenAuth(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{Auth: registrytest.AuthToken, Users: map[string]string{"alice": "s3cret"}})
	layer := registryLayer(t, "token")
	dgst := reg.PushPlugin(t, "tokened:1.0", []byte(registryPluginConfig), layer)
	pull := []string{"repository(plugin):tokened:pull", "repository:tokened:pull"}

	tests := []struct {
		name      string
		auth      distribution.Auth
		wantErr   func(error) bool
		wantReqs  int
		method    string
		grantType string
	}{
		{"password", distribution.Auth{Username: "alice", Password: "s3cret"}, nil, 1, "POST", "password"},
		{"identity token", distribution.Auth{IdentityToken: reg.IdentityToken(t, "alice")}, nil, 1, "POST", "refresh_token"},
		{"registry token", distribution.Auth{RegistryToken: reg.RegistryToken(t, "alice", "tokened", "pull")}, nil, 0, "", ""},
		{"wrong password", distribution.Auth{Username: "alice", Password: "nope"}, errdefs.IsUnauthorized, 1, "POST", "password"},
		{"bad identity token", distribution.Auth{IdentityToken: "refresh-forged"}, errdefs.IsUnauthorized, 1, "POST", "refresh_token"},
		{"registry token for another repository", distribution.Auth{RegistryToken: reg.RegistryToken(t, "alice", "other", "pull")}, errdefs.IsUnauthorized, 0, "", ""},
		{"anonymous", distribution.Auth{}, errdefs.IsUnauthorized, 1, "GET", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(reg.TokenRequests())
			c := registryClient(t, linuxAMD64)
			tg := registryTarget(t, reg.Ref("tokened:1.0"), tt.auth)
			if tt.wantErr == nil {
				checkPlugin(t, c, tg, dgst, layer)
			} else if _, err := c.Resolve(t.Context(), tg); !tt.wantErr(err) {
				t.Fatalf("err = %v, wrong class", err)
			}
			reqs := reg.TokenRequests()[before:]
			if len(reqs) != tt.wantReqs {
				t.Fatalf("token requests %+v, want %d", reqs, tt.wantReqs)
			}
			for _, r := range reqs {
				if r.Method != tt.method || r.GrantType != tt.grantType || !slices.Equal(r.Scopes, pull) {
					t.Errorf("token request %+v, want %s %q with scopes %v", r, tt.method, tt.grantType, pull)
				}
				if r.Method == http.MethodPost && r.ClientID != "containerd-client" {
					t.Errorf("client_id %q", r.ClientID)
				}
			}
		})
	}

	t.Run("token service refuses scopes without repository(plugin)", func(t *testing.T) {
		q := url.Values{"service": {"registrytest"}, "scope": {"repository:tokened:pull"}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.TokenURL+"?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("alice", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
}

// B02: a plugin behind an OCI index or a docker manifest list resolves to
// the entry for this platform; no entry for it is a clear NotFound.
func TestRegistryIndex(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	amdLayer, armLayer := registryLayer(t, "amd64"), registryLayer(t, "arm64")
	amd := reg.PushPlugin(t, "multi:amd64", []byte(registryPluginConfig), amdLayer)
	arm := reg.PushPlugin(t, "multi:arm64", []byte(registryPluginConfig), armLayer)
	entries := []registrytest.IndexEntry{
		{Digest: arm, Platform: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{Digest: amd, Platform: linuxAMD64},
	}
	oci := reg.PushIndex(t, "multi:oci", ocispec.MediaTypeImageIndex, entries...)
	ml := reg.PushIndex(t, "multi:ml", registrytest.MediaTypeManifestList, entries...)

	for tag, idx := range map[string]digest.Digest{"oci": oci, "ml": ml} {
		t.Run(tag, func(t *testing.T) {
			tg := registryTarget(t, reg.Ref("multi:"+tag), distribution.Auth{})
			res := checkPlugin(t, registryClient(t, linuxAMD64), tg, amd, amdLayer)
			if res.Digest != idx || res.Manifest.Platform == nil || res.Manifest.Platform.Architecture != "amd64" {
				t.Errorf("Digest %s (want the index's %s), manifest %+v", res.Digest, idx, res.Manifest)
			}
			checkPlugin(t, registryClient(t, ocispec.Platform{OS: "linux", Architecture: "arm64"}), tg, arm, armLayer)

			_, err := registryClient(t, ocispec.Platform{OS: "linux", Architecture: "s390x"}).Resolve(t.Context(), tg)
			want := "no plugin for platform linux/s390x in " + reg.Ref("multi:"+tag)
			if !errdefs.IsNotFound(err) || err.Error() != want {
				t.Errorf("err = %v, want NotFound %q", err, want)
			}
		})
	}
}

func TestRegistryOCIPluginManifest(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	layer := registryLayer(t, "oci")
	dgst := reg.PushPluginOCI(t, "ociplugin:1.0", []byte(registryPluginConfig), layer)
	res := checkPlugin(t, registryClient(t, linuxAMD64), registryTarget(t, reg.Ref("ociplugin:1.0"), distribution.Auth{}), dgst, layer)
	if res.Manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("media type %s", res.Manifest.MediaType)
	}
}

// B17: an ordinary image is refused with a message that says why.
func TestRegistryImageIsNotAPlugin(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	reg.PushImage(t, "bug-image:1.0", registryLayer(t, "image"))
	_, err := registryClient(t, linuxAMD64).Resolve(t.Context(), registryTarget(t, reg.Ref("bug-image:1.0"), distribution.Auth{}))
	want := reg.Ref("bug-image:1.0") + " is not a plugin: its config media type is application/vnd.docker.container.image.v1+json"
	if !errdefs.IsInvalidArgument(err) || err.Error() != want {
		t.Fatalf("err = %v, want InvalidArgument %q", err, want)
	}
}

// Over TLS the client speaks HTTPS to the loopback registry (insecure by
// default, so the test certificate is not verified) and its token service.
func TestRegistryTLS(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true, Auth: registrytest.AuthToken, Users: map[string]string{"alice": "s3cret"}})
	if !strings.HasPrefix(reg.URL, "https://") || !strings.HasPrefix(reg.TokenURL, "https://") {
		t.Fatalf("URLs %s %s", reg.URL, reg.TokenURL)
	}
	layer := registryLayer(t, "tls")
	dgst := reg.PushPlugin(t, "secure:1.0", []byte(registryPluginConfig), layer)
	checkPlugin(t, registryClient(t, linuxAMD64), registryTarget(t, reg.Ref("secure:1.0"), distribution.Auth{Username: "alice", Password: "s3cret"}), dgst, layer)
}
