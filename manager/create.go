package manager

import (
	"bufio"
	"context"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/plugin"
	"github.com/opencontainers/go-digest"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/manager/pluginstore"
	"github.com/pluginsd/pluginsd/manager/rootfs"
)

// CreateRequest makes a plugin from a build context.
type CreateRequest struct {
	Name string // as the client gave it
	// Context is the tar of config.json and rootfs/ (gzip accepted).
	Context io.Reader
}

// CreateName parses the name of a plugin to create, with dockerd's messages
// (but 400 rather than its 500): the stored name is the familiar reference
// with ":latest" added when no tag is given.
func CreateName(name string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", invalidf("failed to parse reference %s: %v", name, err)
	}
	if _, ok := ref.(reference.Canonical); ok {
		return "", invalidf("canonical references are not permitted")
	}
	return reference.FamiliarString(reference.TagNameOnly(ref)), nil
}

// CheckCreate answers early whether req.Name is valid and free, so a
// handler can refuse before reading a large body.
func (m *Manager) CheckCreate(ctx context.Context, name string) error {
	n, err := CreateName(name)
	if err != nil {
		return err
	}
	if _, ok := m.ps.Snapshot().ByName(n); ok {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("plugin %s already exists", n))
	}
	return nil
}

// Create makes a disabled plugin from a build context. It is all or
// nothing: the plugin is assembled in a staging directory and appears only
// when complete; on any error the staging directory and the blobs written
// for it are removed.
func (m *Manager) Create(ctx context.Context, req CreateRequest) error {
	name, err := CreateName(req.Name)
	if err != nil {
		return err
	}
	release, err := m.ps.Reserve(name)
	if err != nil {
		return err
	}
	defer release()

	staged, err := m.ps.Stage()
	if err != nil {
		return err
	}
	done := false
	defer func() { m.discardUnless(done, staged) }()
	// Blobs committed below are unreferenced until Add; hold GC off.
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()

	rec, err := m.buildFromContext(ctx, name, req.Context, staged)
	if err != nil {
		return err
	}
	if err := m.ps.Add(rec, staged); err != nil {
		return err
	}
	done = true
	m.events.Publish(Event{Action: "create", ID: rec.ID(), Name: name, Time: time.Now()})
	return nil
}

// buildFromContext extracts the context into staged/rootfs while writing
// the same entries as a gzip layer blob, then stores the config and
// manifest blobs and returns the new record.
func (m *Manager) buildFromContext(ctx context.Context, name string, body io.Reader, staged string) (*Plugin, error) {
	dir := pluginstore.StagedRootfs(staged)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	lw, err := m.bs.Writer(ctx)
	if err != nil {
		return nil, err
	}
	defer lw.Close()
	cfgBytes, err := splitAndCompress(ctx, body, dir, lw)
	if err != nil {
		return nil, err
	}
	cfg, _, err := ParseConfig(cfgBytes)
	if err != nil {
		return nil, err
	}
	layerSize := lw.Size()
	layer, err := lw.Commit(ctx, "")
	if err != nil {
		return nil, err
	}
	// As in dockerd, diff_ids holds the digest of the compressed layer.
	cfg.Rootfs = &plugin.RootFS{Type: "layers", DiffIds: []string{layer.String()}}
	cfgBlob, err := EncodeConfig(cfg, m.cfg.Version)
	if err != nil {
		return nil, err
	}
	// What create stores, push uploads and install must accept again.
	if len(cfgBlob) > distribution.MaxConfigSize {
		return nil, invalidf("plugin config is %d bytes once encoded, more than the %d a registry install accepts", len(cfgBlob), distribution.MaxConfigSize)
	}
	cfgDigest, err := m.bs.Put(ctx, cfgBlob)
	if err != nil {
		return nil, err
	}
	mf, err := encodeManifest(
		descriptor{MediaType: MediaTypePluginConfig, Digest: cfgDigest, Size: int64(len(cfgBlob))},
		[]descriptor{{MediaType: MediaTypeLayerGzip, Digest: layer, Size: layerSize}},
	)
	if err != nil {
		return nil, err
	}
	mfDigest, err := m.bs.Put(ctx, mf)
	if err != nil {
		return nil, err
	}
	return &Plugin{
		Plugin: plugin.Plugin{
			ID:              pluginstore.NewID(),
			Name:            name,
			PluginReference: name,
			Config:          cfg,
			Settings:        InitSettings(cfg),
		},
		DockerVersion: m.cfg.Version,
		ConfigDigest:  cfgDigest,
		Blobsums:      []digest.Digest{layer},
		Manifest:      mfDigest,
	}, nil
}

// splitAndCompress extracts a create context into dir while the same
// entries, as a layer tar, are gzipped into w. The extraction (tar parsing,
// file writes) and the compression (gzip, hashing, blob writes) run in two
// goroutines joined by a pipe, so a create uses two cores.
func splitAndCompress(ctx context.Context, body io.Reader, dir string, w io.Writer) ([]byte, error) {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var zerr error
	wg.Go(func() {
		zerr = compressLayer(pr, w)
		// Unblock the splitter if compression failed.
		pr.CloseWithError(zerr)
	})
	// Large writes into the pipe: each one is handed to the compressor
	// whole while the splitter goes on.
	bw := bufio.NewWriterSize(pw, 1<<20)
	cfg, err := rootfs.Split(ctx, body, dir, bw)
	if err == nil {
		err = bw.Flush()
	}
	pw.CloseWithError(err) // nil: EOF for the compressor
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return cfg, zerr
}

// compressLayer gzips r into w, the blob writer, which buffers: flate
// writes its output a few hundred bytes at a time.
func compressLayer(r io.Reader, w io.Writer) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(gz, r, make([]byte, 1<<20)); err != nil {
		return err
	}
	return gz.Close()
}

// discardUnless deletes a staging directory whose plugin was not added, and
// has the blobs written for it collected.
func (m *Manager) discardUnless(added bool, staged string) {
	if !added {
		m.ps.Discard(staged)
		m.kickGC()
	}
}
