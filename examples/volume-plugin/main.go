// Command dirvol is a Docker volume plugin that keeps each volume as a
// directory on the host. It is written to run as a managed plugin (see
// README.md): it serves the VolumeDriver protocol on a unix socket in
// /run/docker/plugins, which the plugin server maps to the host.
//
//	dirvol [-socket PATH] [-store DIR] [-publish DIR]
//
// DEBUG=1 in the environment logs every request.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// version is stamped by build.sh (-ldflags -X main.version=...).
var version = "dev"

func main() {
	logger := log.New(os.Stderr, "", 0)
	if err := run(logger); err != nil {
		logger.Printf("dirvol: %v", err)
		os.Exit(1)
	}
}

func run(logger *log.Logger) error {
	socket := flag.String("socket", "/run/docker/plugins/dirvol.sock", "unix socket to serve the plugin protocol on")
	store := flag.String("store", "/data", "directory that holds the volumes")
	publish := flag.String("publish", "/mnt/volumes", "directory under which mounted volumes appear (the config's propagatedMount)")
	flag.Parse()

	d := newDriver(*store, *publish, bindMounter{})
	if debug, _ := strconv.ParseBool(os.Getenv("DEBUG")); debug {
		d.debug = logger.Printf
	}
	if fi, err := os.Stat(*store); err != nil || !fi.IsDir() {
		return fmt.Errorf("volume store %s is not a directory (is the plugin's data mount set?)", *store)
	}
	if err := d.cleanPublished(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := os.Remove(*socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", *socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(d), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	logger.Printf("dirvol %s serving %s (volumes in %s, mounted under %s, debug %v)",
		version, *socket, *store, *publish, d.debug != nil)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if cerr := d.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	logger.Printf("dirvol stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Request and response bodies of the VolumeDriver protocol. Every response
// may carry Err; an error is also answered with status 500.
type (
	nameRequest struct {
		Name string
	}
	createRequest struct {
		Name string
		Opts map[string]string
	}
	mountRequest struct {
		Name string
		ID   string
	}
	errResponse struct {
		Err string
	}
	mountpointResponse struct {
		Mountpoint string
		Err        string
	}
	getResponse struct {
		Volume volume
		Err    string
	}
	listResponse struct {
		Volumes []volume
		Err     string
	}
)

// newHandler routes the protocol's endpoints to d. Every endpoint is a POST
// with a JSON body (possibly empty) and a JSON answer.
func newHandler(d *driver) http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, f func(body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			var out any
			if err == nil {
				d.logf("%s %s", path, body)
				out, err = f(body)
			}
			w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
			if err != nil {
				d.logf("%s: %v", path, err)
				w.WriteHeader(http.StatusInternalServerError)
				out = errResponse{Err: err.Error()}
			}
			_ = json.NewEncoder(w).Encode(out)
		})
	}

	handle("/Plugin.Activate", func([]byte) (any, error) {
		return map[string][]string{"Implements": {"VolumeDriver"}}, nil
	})
	handle("/VolumeDriver.Capabilities", func([]byte) (any, error) {
		// "local": the volumes live on this host only.
		return map[string]map[string]string{"Capabilities": {"Scope": "local"}}, nil
	})
	handle("/VolumeDriver.Create", func(b []byte) (any, error) {
		var req createRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return errResponse{}, d.Create(req.Name, req.Opts)
	})
	handle("/VolumeDriver.Remove", func(b []byte) (any, error) {
		var req nameRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return errResponse{}, d.Remove(req.Name)
	})
	handle("/VolumeDriver.Mount", func(b []byte) (any, error) {
		var req mountRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		mp, err := d.Mount(req.Name, req.ID)
		return mountpointResponse{Mountpoint: mp}, err
	})
	handle("/VolumeDriver.Unmount", func(b []byte) (any, error) {
		var req mountRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return errResponse{}, d.Unmount(req.Name, req.ID)
	})
	handle("/VolumeDriver.Path", func(b []byte) (any, error) {
		var req nameRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		mp, err := d.Path(req.Name)
		return mountpointResponse{Mountpoint: mp}, err
	})
	handle("/VolumeDriver.Get", func(b []byte) (any, error) {
		var req nameRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		v, err := d.Get(req.Name)
		return getResponse{Volume: v}, err
	})
	handle("/VolumeDriver.List", func([]byte) (any, error) {
		vs, err := d.List()
		return listResponse{Volumes: vs}, err
	})
	return mux
}

// decode reads a request body; an empty body is an empty request.
func decode(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}
