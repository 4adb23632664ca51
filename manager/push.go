package manager

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/distribution"
	"github.com/pluginsd/pluginsd/manager/directio"
)

// PushRequest uploads a plugin to the registry its name points at.
type PushRequest struct {
	Name string // as the client gave it
	RegistryAuth
}

// maxManifestSize bounds a stored manifest read back for a push.
const maxManifestSize = 4 << 20

// Push uploads a plugin's blobs and its manifest, tagged with the plugin's
// name. The stream ends with "TAG: digest: sha256:... size: N" and the aux
// {Tag, Digest, Size}: dockerd sends only the aux, which the CLI does not
// print, so users never saw the digest they need to pin an install.
func (m *Manager) Push(ctx context.Context, req PushRequest, progress ProgressFunc) error {
	if m.reg == nil {
		return fmt.Errorf("error pushing plugin: no registry client configured")
	}
	p, err := m.ps.Snapshot().Resolve(req.Name)
	if err != nil {
		return err
	}
	named, err := reference.ParseNormalizedNamed(p.Name())
	if err != nil {
		return invalidf("plugin name %s is not a valid reference: %v", p.Name(), err)
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return invalidf("plugin name %s has no tag", p.Name())
	}
	mf, err := m.bs.ReadAll(ctx, p.Manifest, maxManifestSize)
	if err != nil {
		return fmt.Errorf("error pushing plugin: reading manifest: %w", err)
	}
	var doc struct {
		MediaType string               `json:"mediaType"`
		Config    ocispec.Descriptor   `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(mf, &doc); err != nil {
		return fmt.Errorf("error pushing plugin: stored manifest: %w", err)
	}
	mediaType := doc.MediaType
	if mediaType == "" {
		mediaType = ocispec.MediaTypeImageManifest
	}
	t := target(named, req.RegistryAuth)
	progress.status("", fmt.Sprintf("The push refers to repository [%s]", reference.FamiliarName(named)))
	blobs := append(append([]ocispec.Descriptor{}, doc.Layers...), doc.Config)
	for _, b := range blobs {
		progress.step(shortID(b.Digest), "Preparing")
	}
	for _, b := range blobs {
		if err := m.pushBlob(ctx, t, b, progress); err != nil {
			return fmt.Errorf("error pushing plugin: %w", err)
		}
	}
	if err := m.reg.PushManifest(ctx, t, tagged.Tag(), mediaType, mf); err != nil {
		return fmt.Errorf("error pushing plugin: %w", err)
	}
	progress.status("", fmt.Sprintf("%s: digest: %s size: %d", tagged.Tag(), p.Manifest, len(mf)))
	progress.send(Progress{Aux: &PushResult{Tag: tagged.Tag(), Digest: p.Manifest.String(), Size: len(mf)}})
	return nil
}

func (m *Manager) pushBlob(ctx context.Context, t distribution.Target, desc ocispec.Descriptor, progress ProgressFunc) error {
	id := shortID(desc.Digest)
	exists, err := m.reg.BlobExists(ctx, t, desc)
	if err != nil {
		return err
	}
	if !exists {
		f, size, err := m.bs.Open(ctx, desc.Digest)
		if err != nil {
			return err
		}
		defer f.Close()
		if size != desc.Size {
			return fmt.Errorf("stored blob %s is %d bytes, the manifest says %d", desc.Digest, size, desc.Size)
		}
		r := &countingReader{r: directio.NewReader(f), total: size, report: func(cur, tot int64) {
			progress.send(Progress{ID: id, Status: "Uploading", Detail: true, Current: cur, Total: tot})
		}}
		err = m.reg.PushBlob(ctx, t, desc, r)
		m.pushed.Add(r.n) // what was read for the upload, even if it then failed
		if err != nil {
			return err
		}
	}
	progress.step(id, "Upload complete")
	return nil
}
