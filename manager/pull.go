package manager

import (
	"bufio"
	"context"
	"errors"
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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/manager/pluginstore"
	"github.com/pluginsd/pluginsd/manager/rootfs"
)

// PrivilegesRequest asks what a remote plugin needs.
type PrivilegesRequest struct {
	Remote string
	RegistryAuth
}

// Privileges resolves a remote plugin and computes its privileges from its
// config. Registry errors are errors (dockerd answers 200 [] for them:
// public case B16), and an index is followed to this platform's plugin, as
// pull does (B02).
func (m *Manager) Privileges(ctx context.Context, req PrivilegesRequest) (plugin.Privileges, error) {
	ref, _, err := ParseRemote(req.Remote)
	if err != nil {
		return nil, err
	}
	res, err := m.resolve(ctx, target(ref, req.RegistryAuth))
	if err != nil {
		return nil, err
	}
	cfg, _, err := ParseConfig(res.ConfigBytes)
	if err != nil {
		return nil, err
	}
	return ComputePrivileges(cfg), nil
}

func (m *Manager) resolve(ctx context.Context, t distribution.Target) (*distribution.Resolved, error) {
	if m.reg == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("no registry client configured")
	}
	res, err := m.reg.Resolve(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("error resolving plugin reference: %w", err)
	}
	return res, nil
}

// PullRequest installs a plugin from a registry.
type PullRequest struct {
	Ref  reference.Named // from ParseRemote
	Tag  string          // the tag kept aside by ParseRemote, if any
	Name string          // from LocalName
	RegistryAuth
	// Privileges are those the user accepted; they must equal what the
	// plugin requires.
	Privileges plugin.Privileges
}

// Pull installs a plugin, disabled. Everything that can be checked before
// downloading layers is (name free, reference resolvable, config valid,
// privileges accepted), so those failures keep a real status. The plugin
// is assembled in a staging directory and appears only when complete.
func (m *Manager) Pull(ctx context.Context, req PullRequest, progress ProgressFunc) error {
	name, err := pluginstore.NormalizeName(req.Name)
	if err != nil {
		return err
	}
	release, err := m.ps.Reserve(name)
	if err != nil {
		return err
	}
	defer release()
	t := target(req.Ref, req.RegistryAuth)
	res, err := m.resolve(ctx, t)
	if err != nil {
		return err
	}
	m.events.Publish(Event{Action: "pull", ID: reference.FamiliarString(req.Ref), Name: name, Time: time.Now()})
	cfg, dockerVersion, err := ParseConfig(res.ConfigBytes)
	if err != nil {
		return err
	}
	if err := checkPullable(cfg, res, req.Privileges); err != nil {
		return err
	}

	staged, err := m.ps.Stage()
	if err != nil {
		return err
	}
	done := false
	defer func() { m.discardUnless(done, staged) }()
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	dir := pluginstore.StagedRootfs(staged)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	pullingFrom(progress, req.Ref, req.Tag, res)
	layers, err := m.fetchLayers(ctx, t, res, dir, progress)
	if err != nil {
		return err
	}
	if err := m.storeMetadata(ctx, res); err != nil {
		return err
	}
	rec := &Plugin{
		Plugin: plugin.Plugin{
			ID:              pluginstore.NewID(),
			Name:            name,
			PluginReference: req.Ref.String(),
			Config:          cfg,
			Settings:        InitSettings(cfg),
		},
		DockerVersion: dockerVersion,
		ConfigDigest:  res.Config.Digest,
		Blobsums:      layers,
		Manifest:      res.Manifest.Digest,
	}
	if err := m.ps.Add(rec, staged); err != nil {
		return err
	}
	done = true
	return nil
}

// checkPullable refuses, before anything is downloaded or any progress is
// sent, a remote whose privileges the user did not accept (every entry
// compared) or whose layers pluginsd cannot apply.
func checkPullable(cfg plugin.Config, res *distribution.Resolved, accepted plugin.Privileges) error {
	if !PrivilegesEqual(ComputePrivileges(cfg), accepted) {
		return invalidf("incorrect privileges")
	}
	for _, l := range res.Layers {
		if _, err := layerCompression(l.MediaType); err != nil {
			return err
		}
	}
	return nil
}

// pullingFrom sends the first two lines of a pull stream.
func pullingFrom(progress ProgressFunc, ref reference.Named, tag string, res *distribution.Resolved) {
	id := tag
	if c, ok := ref.(reference.Canonical); ok && tag == "" {
		id = c.Digest().String()
	}
	progress.status(id, "Pulling from "+reference.FamiliarName(ref))
	progress.status("", "Digest: "+res.Digest.String())
}

// storeMetadata keeps the config and manifest blobs, so the plugin can be
// pushed again unchanged.
func (m *Manager) storeMetadata(ctx context.Context, res *distribution.Resolved) error {
	if _, err := m.putExpected(ctx, res.ConfigBytes, res.Config.Digest); err != nil {
		return err
	}
	_, err := m.putExpected(ctx, res.ManifestBytes, res.Manifest.Digest)
	return err
}

func (m *Manager) putExpected(ctx context.Context, b []byte, want digest.Digest) (digest.Digest, error) {
	w, err := m.bs.Writer(ctx)
	if err != nil {
		return "", err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	return w.Commit(ctx, want)
}

// fetchLayers downloads every layer into the blob store and applies it to
// dir in manifest order, in one pass per layer: the download is hashed
// into the store and extracted at the same time. Layers already stored
// (or being downloaded by a concurrent pull) are not fetched again.
func (m *Manager) fetchLayers(ctx context.Context, t distribution.Target, res *distribution.Resolved, dir string, progress ProgressFunc) ([]digest.Digest, error) {
	out := make([]digest.Digest, 0, len(res.Layers))
	for _, l := range res.Layers {
		gz, err := layerCompression(l.MediaType)
		if err != nil {
			return nil, err
		}
		id := shortID(l.Digest)
		if err := m.fetchLayer(ctx, t, l, gz, dir, id, progress); err != nil {
			return nil, err
		}
		progress.step(id, "Complete")
		out = append(out, l.Digest)
	}
	return out, nil
}

// layerCompression tells whether a layer media type is gzip; types pluginsd
// cannot apply are refused rather than silently skipped.
func layerCompression(mediaType string) (gzipped bool, err error) {
	switch mediaType {
	case MediaTypeLayerGzip, ocispec.MediaTypeImageLayerGzip:
		return true, nil
	case "application/vnd.docker.image.rootfs.diff.tar", ocispec.MediaTypeImageLayer:
		return false, nil
	}
	return false, invalidf("unsupported layer media type %q", mediaType)
}

func (m *Manager) fetchLayer(ctx context.Context, t distribution.Target, l ocispec.Descriptor, gz bool, dir, id string, progress ProgressFunc) error {
	for {
		if _, err := m.bs.Info(ctx, l.Digest); err == nil {
			progress.step(id, "Already exists")
			return m.applyStored(ctx, l, gz, dir, id, progress)
		}
		wait, leader := m.inflight.join(l.Digest)
		if !leader {
			progress.step(id, "Waiting")
			select {
			case <-wait:
				continue // the other pull finished (or failed): look again
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := m.downloadAndApply(ctx, t, l, gz, dir, id, progress)
		m.inflight.leave(l.Digest)
		return err
	}
}

// applyStored extracts a layer that is already in the blob store.
func (m *Manager) applyStored(ctx context.Context, l ocispec.Descriptor, gz bool, dir, id string, progress ProgressFunc) error {
	f, size, err := m.bs.Open(ctx, l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	r := &countingReader{r: f, total: size, report: func(cur, tot int64) {
		progress.send(Progress{ID: id, Status: "Extracting", Detail: true, Current: cur, Total: tot})
	}}
	return applyLayer(ctx, r, gz, dir)
}

// downloadAndApply streams a layer from the registry into the blob store and
// the rootfs at once. The blob is committed only if its digest matches.
func (m *Manager) downloadAndApply(ctx context.Context, t distribution.Target, l ocispec.Descriptor, gz bool, dir, id string, progress ProgressFunc) error {
	progress.step(id, "Pulling fs layer")
	rc, err := m.reg.FetchBlob(ctx, t, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	// rc verifies size and digest before it reports the end, so the copy
	// stored is not hashed again: Commit below runs only after a clean end.
	w, err := m.bs.VerifiedWriter(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	counted := &countingReader{r: rc, total: l.Size, report: func(cur, tot int64) {
		progress.send(Progress{ID: id, Status: "Downloading", Detail: true, Current: cur, Total: tot})
	}}
	defer func() { m.pulled.Add(counted.n) }() // what crossed the network, even if the pull then failed
	stored := &errWriter{w: w}
	if err := teeApply(ctx, counted, stored, gz, dir); err != nil {
		// A transfer that broke mid-layer shows up as a truncated tar; say
		// what really happened. The same for a blob store that failed (a
		// full disk): its error alone names only an ingest file.
		if counted.err != nil {
			return fmt.Errorf("downloading layer %s: %w", l.Digest, counted.err)
		}
		if stored.err != nil {
			return fmt.Errorf("storing layer %s: %w", l.Digest, stored.err)
		}
		return err
	}
	if _, err := w.Commit(ctx, l.Digest); err != nil {
		return err
	}
	progress.send(Progress{ID: id, Status: "Download complete", Detail: true})
	return nil
}

// teeApply copies a layer from r into the blob writer w and, at the same
// time, extracts it into dir: the download and hashing run in this
// goroutine, decompression and extraction in another, joined by a pipe
// that hands over 1 MiB at a time. Every byte of r reaches w, also what
// follows the end of the tar, so the digest covers the whole blob.
func teeApply(ctx context.Context, r io.Reader, w io.Writer, gz bool, dir string) error {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var applyErr error
	wg.Go(func() {
		br := bufio.NewReaderSize(pr, 1<<20)
		applyErr = applyLayer(ctx, br, gz, dir)
		if applyErr == nil {
			_, applyErr = io.Copy(io.Discard, br) // the rest: padding, gzip trailer
		}
		pr.CloseWithError(applyErr) // a failed extraction stops the download
	})
	_, copyErr := io.CopyBuffer(io.MultiWriter(w, pw), r, make([]byte, 1<<20))
	pw.CloseWithError(copyErr) // nil: EOF for the extractor
	wg.Wait()
	if applyErr != nil && (copyErr == nil || errors.Is(copyErr, io.ErrClosedPipe) || errors.Is(copyErr, applyErr)) {
		return applyErr
	}
	return copyErr
}

// applyLayer extracts a (possibly gzip) tar layer into dir.
func applyLayer(ctx context.Context, r io.Reader, gz bool, dir string) error {
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return invalidf("layer is not gzip: %v", err)
		}
		defer func() { _ = zr.Close() }() // a read-side close: nothing to report
		zr.Multistream(false)
		r = zr
	}
	return rootfs.Apply(ctx, r, dir)
}

// countingReader reports bytes read at most every 100 ms, plus once at the
// end.
// errWriter remembers the first error of w.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

type countingReader struct {
	r      io.Reader
	n      int64
	total  int64
	last   time.Time
	report func(cur, total int64)
	err    error // the first error of r other than io.EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	if now := time.Now(); now.Sub(c.last) >= 100*time.Millisecond || (err == io.EOF && n == 0) {
		c.last = now
		c.report(c.n, c.total)
	}
	return n, err
}

// inflight tracks layer downloads in progress, so concurrent pulls of the
// same content download it once: the first is the leader, the others wait
// for it and then find the blob in the store.
type inflight struct {
	mu sync.Mutex // guards m
	m  map[digest.Digest]chan struct{}
}

func (f *inflight) join(d digest.Digest) (wait <-chan struct{}, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[digest.Digest]chan struct{}{}
	}
	if ch, ok := f.m[d]; ok {
		return ch, false
	}
	f.m[d] = make(chan struct{})
	return nil, true
}

func (f *inflight) leave(d digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.m[d])
	delete(f.m, d)
}
