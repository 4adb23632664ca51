package manager

import (
	"archive/tar"
	"crypto/rand"
	"fmt"
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
