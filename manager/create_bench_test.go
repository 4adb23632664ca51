package manager

import (
	"archive/tar"
	"strings"

	"crypto/rand"
	"fmt"
	"github.com/containerd/errdefs"
	"io"
	"testing"
)

// BenchmarkCreate measures POST /plugins/create's work on a 64 MiB
// incompressible rootfs file: split, extract, gzip, hash and store.
func BenchmarkCreate(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	m, err := New(Config{DataRoot: b.TempDir(), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(b.Context())
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeContext(pw, data)) }()
		if err := m.Create(b.Context(), CreateRequest{Name: fmt.Sprintf("big%d", i), Context: pr}); err != nil {
			b.Fatal(err)
		}
	}
}

func writeContext(w io.Writer, data []byte) error {
	tw := tar.NewWriter(w)
	cfg := []byte(`{"description":"big","entrypoint":["/x"],"interface":{"socket":"s.sock","types":["docker.volumedriver/1.0"]}}`)
	for _, h := range []*tar.Header{
		{Name: "config.json", Mode: 0o644, Size: int64(len(cfg))},
		{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir},
		{Name: "rootfs/blob.bin", Mode: 0o644, Size: int64(len(data))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		switch h.Name {
		case "config.json":
			if _, err := tw.Write(cfg); err != nil {
				return err
			}
		case "rootfs/blob.bin":
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// TestCreateConfigTooLargeToInstall: a config.json under the 1 MiB create
// limit that encodes above the limit install accepts is refused at create,
// so pluginsd never pushes a plugin it cannot install again.
func TestCreateConfigTooLargeToInstall(t *testing.T) {
	m, err := New(Config{DataRoot: t.TempDir(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(t.Context())
	desc := strings.Repeat("x", 1<<20-200)
	cfg := []byte(`{"description":"` + desc + `","entrypoint":["/x"],"interface":{"socket":"s.sock","types":["docker.volumedriver/1.0"]}}`)
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		_ = tw.WriteHeader(&tar.Header{Name: "config.json", Mode: 0o644, Size: int64(len(cfg))})
		_, _ = tw.Write(cfg)
		_ = tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir})
		pw.CloseWithError(tw.Close())
	}()
	err = m.Create(t.Context(), CreateRequest{Name: "big", Context: pr})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "a registry install accepts") {
		t.Fatalf("Create = %v, want a 400 about the install limit", err)
	}
}
