package registrytest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"testing"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/distribution"
)

// MediaTypeImageConfig is a container image's config (what B17 pushes).
const MediaTypeImageConfig = schema2.MediaTypeImageConfig

// Fixture helpers push through pluginsd's own registry client with the
// fixture account, so they work under every auth mode. They fail the test on
// error.

// target names repoTag ("repo:tag" or "repo", meaning :latest) in this
// registry and returns it with its tag.
func (r *Registry) target(t testing.TB, repoTag string) (distribution.Target, string) {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(r.Ref(repoTag))
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	named = reference.TagNameOnly(named)
	tagged, ok := named.(reference.Tagged)
	if !ok {
		t.Fatalf("registrytest: %s has a digest, want repo[:tag]", repoTag)
	}
	return distribution.Target{Ref: named, Auth: r.fixture}, tagged.Tag()
}

// PushBlob uploads data to repo (repo or repo:tag; the tag is ignored) and
// returns its descriptor with mediaType.
func (r *Registry) PushBlob(t testing.TB, repo, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	tg, _ := r.target(t, repo)
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	ctx := context.Background()
	ok, err := r.client.BlobExists(ctx, tg, desc)
	if err != nil {
		t.Fatalf("registrytest: blob %s: %v", desc.Digest, err)
	}
	if !ok {
		if err := r.client.PushBlob(ctx, tg, desc, bytes.NewReader(data)); err != nil {
			t.Fatalf("registrytest: push blob %s: %v", desc.Digest, err)
		}
	}
	return desc
}

// PushManifest uploads body as repoTag's manifest with mediaType and returns
// its descriptor.
func (r *Registry) PushManifest(t testing.TB, repoTag, mediaType string, body []byte) ocispec.Descriptor {
	t.Helper()
	tg, tag := r.target(t, repoTag)
	if err := r.client.PushManifest(context.Background(), tg, tag, mediaType, body); err != nil {
		t.Fatalf("registrytest: push manifest %s: %v", repoTag, err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	r.mu.Lock()
	r.manifests[desc.Digest] = desc
	r.mu.Unlock()
	return desc
}

// PushPlugin pushes a plugin as dockerd's push does: the config blob
// (application/vnd.docker.plugin.v1+json), one gzip layer (layerTar is
// compressed unless it already is gzip) and a docker schema2 manifest under
// repoTag. It returns the manifest digest.
func (r *Registry) PushPlugin(t testing.TB, repoTag string, config, layerTar []byte) digest.Digest {
	t.Helper()
	return r.pushManifestOf(t, repoTag, schema2.MediaTypeManifest, schema2.MediaTypePluginConfig, schema2.MediaTypeLayer, config, layerTar).Digest
}

// PushPluginOCI is PushPlugin with an OCI image manifest and OCI gzip layer.
func (r *Registry) PushPluginOCI(t testing.TB, repoTag string, config, layerTar []byte) digest.Digest {
	t.Helper()
	return r.pushManifestOf(t, repoTag, ocispec.MediaTypeImageManifest, schema2.MediaTypePluginConfig, ocispec.MediaTypeImageLayerGzip, config, layerTar).Digest
}

// PushImage pushes an ordinary container image (config media type
// application/vnd.docker.container.image.v1+json) under repoTag (B17).
func (r *Registry) PushImage(t testing.TB, repoTag string, layerTar []byte) digest.Digest {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	return r.pushManifestOf(t, repoTag, schema2.MediaTypeManifest, schema2.MediaTypeImageConfig, schema2.MediaTypeLayer, config, layerTar).Digest
}

func (r *Registry) pushManifestOf(t testing.TB, repoTag, manifestType, configType, layerType string, config, layerTar []byte) ocispec.Descriptor {
	t.Helper()
	cfg := r.PushBlob(t, repoTag, configType, config)
	layer := r.PushBlob(t, repoTag, layerType, gzipped(t, layerTar))
	var (
		body []byte
		err  error
	)
	if manifestType == schema2.MediaTypeManifest {
		// dockerd's byte layout: schemaVersion, config, layers, mediaType
		body, err = json.Marshal(struct {
			SchemaVersion int                  `json:"schemaVersion"`
			Config        ocispec.Descriptor   `json:"config"`
			Layers        []ocispec.Descriptor `json:"layers"`
			MediaType     string               `json:"mediaType"`
		}{2, cfg, []ocispec.Descriptor{layer}, manifestType})
	} else {
		body, err = json.Marshal(ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: manifestType,
			Config:    cfg,
			Layers:    []ocispec.Descriptor{layer},
		})
	}
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return r.PushManifest(t, repoTag, manifestType, body)
}

// IndexEntry is one manifest of an index and the platform it is for. The
// manifest must have been pushed to the same repository by a fixture helper.
type IndexEntry struct {
	Digest   digest.Digest
	Platform ocispec.Platform
}

// PushIndex pushes an index of entries under repoTag, as an OCI image index
// (mediaType ocispec.MediaTypeImageIndex) or a docker manifest list
// (MediaTypeManifestList), and returns its digest.
func (r *Registry) PushIndex(t testing.TB, repoTag, mediaType string, entries ...IndexEntry) digest.Digest {
	t.Helper()
	if mediaType != ocispec.MediaTypeImageIndex && mediaType != manifestlist.MediaTypeManifestList {
		t.Fatalf("registrytest: %q is not an index media type", mediaType)
	}
	descs := make([]ocispec.Descriptor, 0, len(entries))
	for _, e := range entries {
		r.mu.Lock()
		d, ok := r.manifests[e.Digest]
		r.mu.Unlock()
		if !ok {
			t.Fatalf("registrytest: manifest %s was not pushed by a fixture helper", e.Digest)
		}
		p := e.Platform
		d.Platform = &p
		descs = append(descs, d)
	}
	body, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType, Manifests: descs})
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return r.PushManifest(t, repoTag, mediaType, body).Digest
}

// MediaTypeManifestList is the docker manifest list media type.
const MediaTypeManifestList = manifestlist.MediaTypeManifestList

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		return b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return buf.Bytes()
}
