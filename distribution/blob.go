package distribution

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// FetchBlob streams the blob desc from t's repository. The reader checks
// size and digest as it goes: more bytes than desc.Size fail at once, and at
// the end of the stream a short or corrupt blob fails with an error classed
// errdefs.ErrDataLoss instead of io.EOF. Close releases the connection.
func (c *Client) FetchBlob(ctx context.Context, t Target, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := checkDescriptor("blob", desc, -1); err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	err := c.do(ctx, t, false, func(ctx context.Context, repo *remote.Repository) error {
		r, err := repo.Blobs().Fetch(ctx, desc)
		rc = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return &verifyingReader{rc: rc, desc: desc, h: desc.Digest.Algorithm().Hash()}, nil
}

// verifyingReader checks a stream against its descriptor.
type verifyingReader struct {
	rc   io.ReadCloser
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
	err  error // sticky
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.rc.Read(p)
	if r.n+int64(n) > r.desc.Size {
		n = int(r.desc.Size - r.n)
		r.err = classed(errdefs.ErrDataLoss, "blob %s: more than the expected %d bytes", r.desc.Digest, r.desc.Size)
		err = r.err
	}
	r.h.Write(p[:n])
	r.n += int64(n)
	switch {
	case r.err != nil:
	case err == io.EOF:
		r.err = r.verify()
		err = r.err
	case err != nil:
		r.err = classify(fmt.Errorf("blob %s: %w", r.desc.Digest, err))
		err = r.err
	}
	return n, err
}

// verify is called at the end of the stream.
func (r *verifyingReader) verify() error {
	if r.n != r.desc.Size {
		return classed(errdefs.ErrDataLoss, "blob %s: got %d bytes, want %d", r.desc.Digest, r.n, r.desc.Size)
	}
	if got := digest.NewDigest(r.desc.Digest.Algorithm(), r.h); got != r.desc.Digest {
		return classed(errdefs.ErrDataLoss, "blob %s: content has digest %s", r.desc.Digest, got)
	}
	return io.EOF
}

func (r *verifyingReader) Close() error { return r.rc.Close() }

// BlobExists reports whether t's repository holds the blob desc. A blob that
// the registry reports with another size is an error classed
// errdefs.ErrDataLoss. It asks for push access, as it is part of a push.
func (c *Client) BlobExists(ctx context.Context, t Target, desc ocispec.Descriptor) (bool, error) {
	if err := checkDescriptor("blob", desc, -1); err != nil {
		return false, err
	}
	exists := false
	err := c.do(ctx, t, true, func(ctx context.Context, repo *remote.Repository) error {
		got, err := repo.Blobs().Resolve(ctx, desc.Digest.String())
		if errors.Is(err, errdef.ErrNotFound) {
			exists = false
			return nil
		}
		if err != nil {
			return err
		}
		if got.Size != desc.Size {
			return classed(errdefs.ErrDataLoss, "blob %s: registry reports %d bytes, want %d", desc.Digest, got.Size, desc.Size)
		}
		exists = true
		return nil
	})
	return exists, err
}

// PushBlob uploads the blob desc, read from r, to t's repository in one
// monolithic upload. r must yield exactly the described content: content
// that is longer, shorter or hashes differently is caught before its last
// byte is sent, the upload is cut short, and the error is classed
// errdefs.ErrDataLoss. The registry checks the digest as well.
func (c *Client) PushBlob(ctx context.Context, t Target, desc ocispec.Descriptor, r io.Reader) error {
	if err := checkDescriptor("blob", desc, -1); err != nil {
		return err
	}
	src := &pushReader{r: r, desc: desc, h: desc.Digest.Algorithm().Hash()}
	return c.do(ctx, t, true, func(ctx context.Context, repo *remote.Repository) error {
		err := repo.Blobs().Push(ctx, desc, src)
		if lerr := src.failure(); lerr != nil {
			return noRetry{lerr}
		}
		if err != nil && src.consumed() {
			return noRetry{err} // r cannot be replayed
		}
		return err
	})
}

// pushReader checks the content being uploaded against its descriptor, so a
// corrupt local blob is reported as such rather than as a registry error.
type pushReader struct {
	r    io.Reader
	desc ocispec.Descriptor
	h    hash.Hash

	mu  sync.Mutex // guards n and err: read by the transport, checked by PushBlob
	n   int64
	err error
}

func (p *pushReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return 0, p.err
	}
	if p.n+int64(n) > p.desc.Size {
		p.err = classed(errdefs.ErrDataLoss, "blob %s: content to push is longer than %d bytes", p.desc.Digest, p.desc.Size)
		return 0, p.err
	}
	p.h.Write(b[:n])
	p.n += int64(n)
	if n > 0 && p.n == p.desc.Size {
		// Check before the last bytes leave, so the upload is cut short
		// and the registry never receives corrupt content in full.
		if got := digest.NewDigest(p.desc.Digest.Algorithm(), p.h); got != p.desc.Digest {
			p.err = classed(errdefs.ErrDataLoss, "blob %s: content to push has digest %s", p.desc.Digest, got)
			return 0, p.err
		}
	}
	if err == io.EOF && p.n != p.desc.Size {
		p.err = classed(errdefs.ErrDataLoss, "blob %s: content to push is %d bytes, want %d", p.desc.Digest, p.n, p.desc.Size)
		return n, p.err
	}
	if err == io.EOF && p.desc.Size == 0 {
		if got := digest.NewDigest(p.desc.Digest.Algorithm(), p.h); got != p.desc.Digest {
			p.err = classed(errdefs.ErrDataLoss, "blob %s: content to push has digest %s", p.desc.Digest, got)
			return 0, p.err
		}
	}
	return n, err
}

func (p *pushReader) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pushReader) consumed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n > 0
}

// PushManifest uploads manifest bytes b of the given media type under tag in
// t's repository. The registry's Docker-Content-Digest, when sent, must
// match the digest of b.
func (c *Client) PushManifest(ctx context.Context, t Target, tag string, mediaType string, b []byte) error {
	if t.Ref == nil {
		return errdefs.ErrInvalidArgument.WithMessage("no reference given")
	}
	if _, err := reference.WithTag(t.Ref, tag); err != nil {
		return classed(errdefs.ErrInvalidArgument, "tag %q: %v", tag, err)
	}
	if mediaType == "" {
		return errdefs.ErrInvalidArgument.WithMessage("manifest media type is empty")
	}
	if len(b) > MaxManifestSize {
		return classed(errdefs.ErrResourceExhausted, "manifest is %d bytes, over the limit of %d", len(b), MaxManifestSize)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return c.do(ctx, t, true, func(ctx context.Context, repo *remote.Repository) error {
		return repo.Manifests().PushReference(ctx, desc, bytes.NewReader(b), tag)
	})
}
