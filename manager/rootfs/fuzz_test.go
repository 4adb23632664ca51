package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
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

// FuzzScript reaches the extractor more often than FuzzSplit, whose
// mutations rarely keep tar checksums valid: the input is a script of
// entries, one per line, "<kind> <name> <link or body>", turned into a
// well-formed tar. Kinds: f file, d dir, l symlink, h hardlink, c char
// device, p FIFO; anything else is a file. The properties are FuzzSplit's.
func FuzzScript(f *testing.F) {
	f.Add("f config.json {}\nd rootfs/\nf rootfs/a hello\nl rootfs/b /bin/a\nh rootfs/c rootfs/a")
	f.Add("f config.json {}\nl rootfs/s ../..\nf rootfs/s/x pwned")
	f.Add("f config.json {}\nl rootfs/s a\nd rootfs/a\nl rootfs/a/up ../..\nd rootfs/s/up/x")
	f.Add("f config.json {}\nd rootfs/d\nl rootfs/d .\nh rootfs/h rootfs/d/../x\nc rootfs/d/null")
	f.Fuzz(func(t *testing.T, script string) {
		var entries []ent
		for line := range strings.SplitSeq(script, "\n") {
			kind, rest, _ := strings.Cut(line, " ")
			name, arg, _ := strings.Cut(rest, " ")
			e := file(name, arg)
			switch kind {
			case "d":
				e = dir(name)
			case "l":
				e = symlink(name, arg)
			case "h":
				e = hardlink(name, arg)
			case "c":
				e = device(name, tar.TypeChar)
			case "p":
				e = device(name, tar.TypeFifo)
			}
			entries = append(entries, e)
		}
		body, ok := tryMakeTar(entries)
		if !ok {
			return // archive/tar refuses to encode it; not our input
		}
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
		applied := newSandbox(t)
		if err := Apply(context.Background(), bytes.NewReader(layer.Bytes()), applied.dir); err != nil {
			t.Fatalf("Apply of Split's layer: %v", err)
		}
		applied.check(t)
	})
}
