package distribution

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestFetchBlobVerifiesWhileStreaming(t *testing.T) {
	f := newFakeRegistry(t)
	content := bytes.Repeat([]byte("plugin layer "), 10000)
	desc := f.putBlob("application/octet-stream", content)
	path := "/v2/p/blobs/" + desc.Digest.String()
	c := newTestClient(t, Options{})
	tg := target(t, f.host()+"/p:1.0")

	// serve writes body; chunked (no Content-Length) when length is false.
	serve := func(body []byte, length bool) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			if length {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			w.WriteHeader(http.StatusOK)
			half := len(body) / 2
			w.Write(body[:half])
			w.(http.Flusher).Flush()
			w.Write(body[half:])
			return true
		}
	}
	flipped := bytes.Clone(content)
	flipped[len(flipped)-1] ^= 1

	tests := []struct {
		name    string
		hook    func(w http.ResponseWriter, r *http.Request) bool
		wantErr string // empty: the content reads back intact
	}{
		{"intact", nil, ""},
		{"intact chunked", serve(content, false), ""},
		{"corrupt last byte", serve(flipped, true), "content has digest"},
		{"corrupt chunked", serve(flipped, false), "content has digest"},
		{"short chunked", serve(content[:len(content)-10], false), "want " + strconv.Itoa(len(content))},
		{"long chunked", serve(append(bytes.Clone(content), "extra"...), false), "more than the expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setHook(tt.hook)
			defer f.setHook(nil)
			rc, err := c.FetchBlob(t.Context(), tg, desc)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("read %d bytes, err %v", len(got), err)
				}
				return
			}
			if !errdefs.IsDataLoss(err) || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want DataLoss %q", err, tt.wantErr)
			}
			if _, err2 := rc.Read(make([]byte, 1)); !errdefs.IsDataLoss(err2) {
				t.Errorf("error is not sticky: %v", err2)
			}
		})
	}

	t.Run("Content-Length disagrees with the descriptor", func(t *testing.T) {
		f.setHook(serve(content[:100], true))
		defer f.setHook(nil)
		_, err := c.FetchBlob(t.Context(), tg, desc)
		if !errdefs.IsDataLoss(err) {
			t.Fatalf("err = %v, want DataLoss", err)
		}
	})
	t.Run("missing blob", func(t *testing.T) {
		_, err := c.FetchBlob(t.Context(), tg, ocispec.Descriptor{Digest: digest.FromString("nope"), Size: 4})
		if !errdefs.IsNotFound(err) {
			t.Fatalf("err = %v, want NotFound", err)
		}
	})
	t.Run("malformed descriptor", func(t *testing.T) {
		_, err := c.FetchBlob(t.Context(), tg, ocispec.Descriptor{Digest: "sha256:abc", Size: 4})
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("err = %v, want InvalidArgument", err)
		}
	})
}

func TestPushRoundTrip(t *testing.T) {
	f := newFakeRegistry(t)
	c := newTestClient(t, Options{})
	tg := target(t, f.host()+"/pushed:1.0")
	ctx := t.Context()

	cfgBytes := []byte(`{"Interface":{"Socket":"x.sock"}}`)
	layerBytes := bytes.Repeat([]byte{7}, 100000)
	cfg := ocispec.Descriptor{MediaType: MediaTypePluginConfig, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))}
	layer := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromBytes(layerBytes), Size: int64(len(layerBytes))}

	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cfg, cfgBytes}, {layer, layerBytes}} {
		ok, err := c.BlobExists(ctx, tg, b.desc)
		if err != nil || ok {
			t.Fatalf("BlobExists before push = %v, %v", ok, err)
		}
		// a reader that hands out one byte at a time must still work
		if err := c.PushBlob(ctx, tg, b.desc, iotest.OneByteReader(bytes.NewReader(b.data))); err != nil {
			t.Fatal(err)
		}
		ok, err = c.BlobExists(ctx, tg, b.desc)
		if err != nil || !ok {
			t.Fatalf("BlobExists after push = %v, %v", ok, err)
		}
	}
	m := manifestJSON(MediaTypeManifest, cfg, layer)
	if err := c.PushManifest(ctx, tg, "1.0", MediaTypeManifest, m); err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != digest.FromBytes(m) || !bytes.Equal(res.ConfigBytes, cfgBytes) {
		t.Errorf("resolved %+v", res)
	}

	t.Run("registry reports another size", func(t *testing.T) {
		wrong := cfg
		wrong.Size++
		if _, err := c.BlobExists(ctx, tg, wrong); !errdefs.IsDataLoss(err) {
			t.Fatalf("err = %v, want DataLoss", err)
		}
	})
}

// A local blob that does not match its descriptor is refused before the
// registry can store it.
func TestPushBlobCorruptSource(t *testing.T) {
	c := newTestClient(t, Options{})
	data := []byte("the real content")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}

	for name, src := range map[string][]byte{
		"flipped": []byte("the real c0ntent"),
		"short":   data[:5],
		"long":    append(bytes.Clone(data), '!'),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRegistry(t)
			tg := target(t, f.host()+"/pushed:1.0")
			err := c.PushBlob(t.Context(), tg, desc, bytes.NewReader(src))
			if !errdefs.IsDataLoss(err) {
				t.Fatalf("err = %v, want DataLoss", err)
			}
			// A longer source may have sent the genuine content first (the
			// transport reads exactly desc.Size bytes); the others must
			// not have left anything behind.
			if ok, _ := c.BlobExists(t.Context(), tg, desc); ok && name != "long" {
				t.Fatal("registry stored a corrupt blob")
			}
		})
	}
}

func TestPushManifestArguments(t *testing.T) {
	f := newFakeRegistry(t)
	c := newTestClient(t, Options{})
	tg := target(t, f.host()+"/pushed:1.0")
	if err := c.PushManifest(t.Context(), tg, "bad tag", MediaTypeManifest, []byte("{}")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad tag: %v", err)
	}
	if err := c.PushManifest(t.Context(), tg, "1.0", "", []byte("{}")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no media type: %v", err)
	}
	if err := c.PushManifest(t.Context(), tg, "1.0", MediaTypeManifest, make([]byte, MaxManifestSize+1)); !errdefs.IsResourceExhausted(err) {
		t.Errorf("too big: %v", err)
	}
}
