package distribution

import (
	"context"
	_ "crypto/sha256" // digest algorithms used by registries
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Limits on what a registry may send. Past them an operation fails with an
// error classed errdefs.ErrResourceExhausted.
const (
	MaxManifestSize = 4 << 20 // bytes of one manifest, index or manifest list
	MaxConfigSize   = 1 << 20 // bytes of a plugin config blob
	MaxLayers       = 256     // layers in one plugin manifest
)

// Media types this package reads and writes.
const (
	MediaTypePluginConfig = schema2.MediaTypePluginConfig // application/vnd.docker.plugin.v1+json
	MediaTypeManifest     = schema2.MediaTypeManifest     // docker schema2 manifest
	MediaTypeManifestList = manifestlist.MediaTypeManifestList

	mediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// manifestAccept is the Accept list for manifests by tag or digest; dockerd
// sends the same four types and */* (spec §8.2).
var manifestAccept = []string{
	schema2.MediaTypeManifest,
	manifestlist.MediaTypeManifestList,
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	"*/*",
}

// Resolved is a plugin manifest found in a registry, with its config.
type Resolved struct {
	// Digest is the digest of what the reference points at: the index or
	// manifest list when there is one, else the manifest. It is what the
	// "Digest:" progress line shows.
	Digest digest.Digest
	// Manifest is the plugin manifest chosen (with Platform set when it was
	// chosen from an index).
	Manifest      ocispec.Descriptor
	ManifestBytes []byte
	// Config is the plugin config descriptor; ConfigBytes its verified
	// content (at most MaxConfigSize bytes).
	Config      ocispec.Descriptor
	ConfigBytes []byte
	// Layers are the manifest's layers, in order.
	Layers []ocispec.Descriptor
}

// Resolve finds the plugin manifest of t.Ref (by tag or digest; an OCI index
// or docker manifest list is followed to the entry for the client's
// platform), checks it is a plugin, and fetches its config.
func (c *Client) Resolve(ctx context.Context, t Target) (*Resolved, error) {
	var res *Resolved
	err := c.do(ctx, t, false, func(ctx context.Context, repo *remote.Repository) error {
		r, err := c.resolve(ctx, t.Ref, repo)
		res = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// manifestDoc holds the fields of any manifest kind this package reads.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	FSLayers      json.RawMessage      `json:"fsLayers,omitempty"` // schema1
}

func (c *Client) resolve(ctx context.Context, named reference.Named, repo *remote.Repository) (*Resolved, error) {
	name := named.String()
	var (
		refString string
		refDigest digest.Digest
	)
	switch r := named.(type) {
	case reference.Digested:
		refDigest = r.Digest()
		if err := refDigest.Validate(); err != nil {
			return nil, classed(errdefs.ErrInvalidArgument, "%s: %v", name, err)
		}
		refString = refDigest.String()
	case reference.Tagged:
		refString = r.Tag()
	default:
		refString = "latest"
	}

	ms := repo.Manifests()
	top, rc, err := ms.FetchReference(ctx, refString)
	if err != nil {
		return nil, err
	}
	if refDigest != "" && top.Digest != refDigest {
		rc.Close()
		return nil, classed(errdefs.ErrDataLoss, "%s: registry returned manifest %s", name, top.Digest)
	}
	body, err := readVerified(rc, top, MaxManifestSize, name+": manifest")
	if err != nil {
		return nil, err
	}
	doc, kind, err := parseManifest(name, top.MediaType, body)
	if err != nil {
		return nil, err
	}
	top.MediaType = kind

	res := &Resolved{Digest: top.Digest, Manifest: top, ManifestBytes: body}
	if kind == ocispec.MediaTypeImageIndex || kind == manifestlist.MediaTypeManifestList {
		i := selectPlatform(c.platform, doc.Manifests)
		if i < 0 {
			return nil, classed(errdefs.ErrNotFound, "no plugin for platform %s in %s", platformString(c.platform), name)
		}
		entry := doc.Manifests[i]
		if err := checkIndexEntry(name, entry); err != nil {
			return nil, err
		}
		rc, err := ms.Fetch(ctx, entry)
		if err != nil {
			return nil, err
		}
		body, err := readVerified(rc, entry, MaxManifestSize, name+": manifest")
		if err != nil {
			return nil, err
		}
		doc, kind, err = parseManifest(name, entry.MediaType, body)
		if err != nil {
			return nil, err
		}
		if kind != entry.MediaType {
			return nil, classed(errdefs.ErrInvalidArgument, "%s: manifest %s is %s, but the index says %s", name, entry.Digest, kind, entry.MediaType)
		}
		res.Manifest, res.ManifestBytes = entry, body
	}

	cfg, layers, err := checkPluginManifest(name, res.Manifest.Digest, doc)
	if err != nil {
		return nil, err
	}
	rc, err = repo.Blobs().Fetch(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res.ConfigBytes, err = readVerified(rc, cfg, MaxConfigSize, name+": config")
	if err != nil {
		return nil, err
	}
	res.Config, res.Layers = cfg, layers
	return res, nil
}

// parseManifest decodes a manifest document and decides its kind from its
// mediaType field, the Content-Type it came with, and as a last resort its
// shape. Only the four docker/OCI v2 kinds are accepted.
func parseManifest(name, contentType string, b []byte) (*manifestDoc, string, error) {
	var doc manifestDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, "", classed(errdefs.ErrInvalidArgument, "%s: invalid manifest: %v", name, err)
	}
	known := func(mt string) bool {
		switch mt {
		case schema2.MediaTypeManifest, ocispec.MediaTypeImageManifest,
			manifestlist.MediaTypeManifestList, ocispec.MediaTypeImageIndex:
			return true
		}
		return false
	}
	schema1 := func(mt string) bool { return mt == mediaTypeSchema1 || mt == mediaTypeSchema1Signed }

	if schema1(doc.MediaType) || schema1(contentType) || doc.SchemaVersion == 1 || len(doc.FSLayers) > 0 {
		return nil, "", classed(errdefs.ErrInvalidArgument, "%s: schema1 manifests are not supported", name)
	}
	kind := doc.MediaType
	switch {
	case kind != "" && known(contentType) && kind != contentType:
		return nil, "", classed(errdefs.ErrInvalidArgument, "%s: manifest says it is %s but was served as %s", name, kind, contentType)
	case kind == "" && known(contentType):
		kind = contentType
	case kind == "" && doc.Manifests != nil:
		kind = ocispec.MediaTypeImageIndex
	case kind == "" && doc.Config != nil:
		kind = ocispec.MediaTypeImageManifest
	}
	if !known(kind) {
		if kind == "" {
			kind = contentType
		}
		return nil, "", classed(errdefs.ErrInvalidArgument, "%s: unsupported manifest media type %q", name, kind)
	}
	if doc.SchemaVersion != 2 {
		return nil, "", classed(errdefs.ErrInvalidArgument, "%s: unsupported manifest schemaVersion %d", name, doc.SchemaVersion)
	}
	return &doc, kind, nil
}

// checkIndexEntry vets the index entry chosen before it is fetched.
func checkIndexEntry(name string, d ocispec.Descriptor) error {
	switch d.MediaType {
	case schema2.MediaTypeManifest, ocispec.MediaTypeImageManifest:
	case ocispec.MediaTypeImageIndex, manifestlist.MediaTypeManifestList:
		return classed(errdefs.ErrInvalidArgument, "%s: nested index %s is not supported", name, d.Digest)
	default:
		return classed(errdefs.ErrInvalidArgument, "%s: index entry %s has unsupported media type %q", name, d.Digest, d.MediaType)
	}
	return checkDescriptor(name+": index entry", d, MaxManifestSize)
}

// checkPluginManifest checks a manifest is a plugin's and within limits, and
// returns its config and layers.
func checkPluginManifest(name string, dgst digest.Digest, doc *manifestDoc) (ocispec.Descriptor, []ocispec.Descriptor, error) {
	if doc.Config == nil {
		return ocispec.Descriptor{}, nil, classed(errdefs.ErrInvalidArgument, "%s: manifest %s has no config", name, dgst)
	}
	cfg := *doc.Config
	if cfg.MediaType != schema2.MediaTypePluginConfig {
		return ocispec.Descriptor{}, nil, classed(errdefs.ErrInvalidArgument, "%s is not a plugin: its config media type is %s", name, cfg.MediaType)
	}
	if err := checkDescriptor(name+": config", cfg, MaxConfigSize); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if len(doc.Layers) > MaxLayers {
		return ocispec.Descriptor{}, nil, classed(errdefs.ErrResourceExhausted, "%s: manifest %s has %d layers, more than the limit of %d", name, dgst, len(doc.Layers), MaxLayers)
	}
	for _, l := range doc.Layers {
		if err := checkDescriptor(name+": layer", l, -1); err != nil {
			return ocispec.Descriptor{}, nil, err
		}
	}
	return cfg, doc.Layers, nil
}

// checkDescriptor rejects descriptors with a malformed digest, an
// unavailable algorithm or a negative size, and those over limit (when
// limit >= 0).
func checkDescriptor(what string, d ocispec.Descriptor, limit int64) error {
	if err := d.Digest.Validate(); err != nil {
		return classed(errdefs.ErrInvalidArgument, "%s %q: %v", what, d.Digest, err)
	}
	if d.Size < 0 {
		return classed(errdefs.ErrInvalidArgument, "%s %s: negative size %d", what, d.Digest, d.Size)
	}
	if limit >= 0 && d.Size > limit {
		return classed(errdefs.ErrResourceExhausted, "%s %s is %d bytes, over the limit of %d", what, d.Digest, d.Size, limit)
	}
	return nil
}

// readVerified reads all of rc, which must match desc in size and digest and
// hold at most limit bytes, and closes it.
func readVerified(rc io.ReadCloser, desc ocispec.Descriptor, limit int64, what string) ([]byte, error) {
	defer rc.Close()
	if err := checkDescriptor(what, desc, limit); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, classify(fmt.Errorf("%s %s: %w", what, desc.Digest, err))
	}
	if int64(len(b)) > limit {
		return nil, classed(errdefs.ErrResourceExhausted, "%s %s is over the limit of %d bytes", what, desc.Digest, limit)
	}
	if int64(len(b)) != desc.Size {
		return nil, classed(errdefs.ErrDataLoss, "%s %s: got %d bytes, want %d", what, desc.Digest, len(b), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, classed(errdefs.ErrDataLoss, "%s %s: content has digest %s", what, desc.Digest, got)
	}
	return b, nil
}
