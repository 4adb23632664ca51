package manager

import (
	"context"
	"io"
	"strings"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/distribution"
)

// Registry is what the manager needs from a registry client
// (*distribution.Client in production, a fake in unit tests).
type Registry interface {
	Resolve(ctx context.Context, t distribution.Target) (*distribution.Resolved, error)
	// FetchBlob's reader must check the content against desc (size and
	// digest) and return io.EOF only when it matched: downloads are stored
	// without hashing them again (blobstore.VerifiedWriter).
	FetchBlob(ctx context.Context, t distribution.Target, desc ocispec.Descriptor) (io.ReadCloser, error)
	BlobExists(ctx context.Context, t distribution.Target, desc ocispec.Descriptor) (bool, error)
	PushBlob(ctx context.Context, t distribution.Target, desc ocispec.Descriptor, r io.Reader) error
	PushManifest(ctx context.Context, t distribution.Target, tag, mediaType string, b []byte) error
}

// RegistryAuth is what a client sent in X-Registry-Auth and X-Meta-*.
type RegistryAuth struct {
	Auth        distribution.Auth
	MetaHeaders map[string][]string
}

// ParseRemote parses the remote reference of a pull or upgrade (§4.3): a
// tag and a digest together keep the digest; a bare name gets ":latest".
// The returned tag is the one kept aside for naming (may be empty).
func ParseRemote(remote string) (ref reference.Named, tag string, err error) {
	if strings.TrimSpace(remote) == "" {
		return nil, "", invalidf("invalid reference format: remote is required")
	}
	named, err := reference.ParseNormalizedNamed(remote)
	if err != nil {
		return nil, "", invalidf("%v", err)
	}
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	if c, ok := named.(reference.Canonical); ok {
		d, err := reference.WithDigest(reference.TrimNamed(named), c.Digest())
		if err != nil {
			return nil, "", invalidf("%v", err)
		}
		return d, tag, nil
	}
	return reference.TagNameOnly(named), tag, nil
}

// LocalName computes the local plugin name of a pull (§4.3, dockerd's
// getName): from name when given (a tag kept as typed, otherwise the
// familiar name with ":latest"), else from the remote.
func LocalName(ref reference.Named, tag, name string) (string, error) {
	if name == "" {
		if _, ok := ref.(reference.Canonical); ok {
			if tag == "" {
				tag = "latest"
			}
			t, err := reference.WithTag(reference.TrimNamed(ref), tag)
			if err != nil {
				return "", invalidf("%v", err)
			}
			return reference.FamiliarString(t), nil
		}
		return reference.FamiliarString(ref), nil
	}
	local, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", invalidf("%v", err)
	}
	if _, ok := local.(reference.Canonical); ok {
		return "", invalidf("cannot use digest in plugin tag")
	}
	if reference.IsNameOnly(local) {
		return reference.FamiliarString(reference.TagNameOnly(local)), nil
	}
	// A tagged name is stored familiarised (pull) or looked up as typed
	// (upgrade), as in dockerd.
	return name, nil
}

// target builds the registry target of ref.
func target(ref reference.Named, ra RegistryAuth) distribution.Target {
	return distribution.Target{Ref: ref, Auth: ra.Auth, MetaHeaders: ra.MetaHeaders}
}

// shortID is Docker's 12-hex progress ID of a digest.
func shortID(d interface{ Encoded() string }) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
