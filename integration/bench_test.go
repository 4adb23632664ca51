package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchServer is the real bin/pluginsd with benchPlugins small plugins
// stored, listening on loopback TCP, as `make bench` measures it.
type benchServer struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
}

const benchPlugins = 100

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	dir := b.TempDir()
	port := freePort(b)
	cmd := exec.Command(pluginsdBin, "--host", "tcp://127.0.0.1:"+port, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{cmd: cmd, base: "http://127.0.0.1:" + port}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitPing(b, s.base)
	for i := range benchPlugins {
		body := smallContext(b, fmt.Sprintf("bench %d", i))
		resp, err := http.Post(fmt.Sprintf("%s/v1.41/plugins/create?name=bench-%03d", s.base, i), "application/x-tar", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			b.Fatalf("create: %s", resp.Status)
		}
	}
	return s
}

// smallContext is a create context like the conformance "vol" plugin: a
// config and a rootfs with a unique file (the test plugin binary itself is
// irrelevant to list and inspect speed).
func smallContext(t testing.TB, unique string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte, mode int64) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		t.Fatal(err)
	}
	add("config.json", []byte(volConfig("/tmp")), 0o644)
	add("rootfs/VARIANT", []byte(unique), 0o644)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func freePort(t testing.TB) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitPing(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no /_ping answer from %s", base)
}

// rssMB is the resident memory of pid in MB.
func rssMB(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// load sends b.N GETs of path from 16 connections (as bench.sh's wrk
// -c16 does) and reports requests per second and the server's memory.
func (s *benchServer) load(b *testing.B, path string) {
	b.Helper()
	const conns = 16
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.base+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(rssMB(b, s.cmd.Process.Pid), "rss-MB")
}

// BenchmarkList measures GET /v1.41/plugins with 100 plugins stored.
func BenchmarkList(b *testing.B) {
	s := startBenchServer(b)
	s.load(b, "/v1.41/plugins")
}

// BenchmarkInspect measures GET /v1.41/plugins/{name}/json with 100
// plugins stored.
func BenchmarkInspect(b *testing.B) {
	s := startBenchServer(b)
	s.load(b, "/v1.41/plugins/bench-007:latest/json")
}
