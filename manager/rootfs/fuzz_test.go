package rootfs

import (
	"bytes"
	"context"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzSplit feeds arbitrary bodies to Split. Seeds live in
// testdata/fuzz/FuzzSplit (a valid context, its gzip form, and traversal,
// symlink and hardlink escapes), so `go test` replays them every run.
//
// Properties: Split never panics; nothing outside the target directory
// changes; with an in-memory body and layer every error is the client's
// (invalid argument); on success the config is non-nil and the layer is a
// well-formed tar that Apply extracts, again without escaping.
func FuzzSplit(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		s := newSandbox(t)
		var layer bytes.Buffer
		cfg, err := Split(context.Background(), bytes.NewReader(body), s.dir, &layer)
		s.check(t)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error not classed as invalid argument: %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		if _, err := parseLayer(layer.Bytes()); err != nil {
			t.Fatalf("layer does not parse: %v", err)
		}
		applied := newSandbox(t)
		if err := Apply(context.Background(), bytes.NewReader(layer.Bytes()), applied.dir); err != nil {
			t.Fatalf("Apply of Split's layer: %v", err)
		}
		applied.check(t)
	})
}
