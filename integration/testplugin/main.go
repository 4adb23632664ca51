// Command testplugin is the plugin binary of pluginsd's integration tests.
// One binary serves every test plugin; the MODE environment variable of the
// plugin's config picks its behaviour:
//
//	volume (default)  a local volume driver keeping volumes under $ROOT (/data)
//	slow              like volume, but listens only after $DELAY seconds
//	crash             writes a line to stderr and exits with status 3
//	report            like volume, and /Report returns what the plugin sees:
//	                  uid, capabilities, mounts, env, args
//	authz             like volume, and an authorization plugin: denies by
//	                  $DENY_URI, $DENY_BODY, $DENY_RES_URI; /Calls lists the
//	                  AuthZReq/AuthZRes calls it got (see authz.go)
//
// It listens on /run/docker/plugins/$SOCKET (default tp.sock), the path
// managed plugins use inside their container.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	mode := getenv("MODE", "volume")
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "testplugin: crash mode, exiting with status 3")
		os.Exit(3)
	case "slow":
		d, _ := strconv.Atoi(getenv("DELAY", "5"))
		time.Sleep(time.Duration(d) * time.Second)
	}
	dir := "/run/docker/plugins"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	sock := filepath.Join(dir, getenv("SOCKET", "tp.sock"))
	_ = os.Remove(sock)
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string][]string{"Implements": {"VolumeDriver"}})
	})
	volumes(mux, getenv("ROOT", "/data"))
	if mode == "report" {
		mux.HandleFunc("/Report", report)
	}
	if mode == "authz" {
		authz(mux) // authz.go
	}
	log.Printf("testplugin: %s mode listening on %s", mode, sock)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	log.Fatal(srv.Serve(l))
}

// report describes the plugin's view of its container.
func report(w http.ResponseWriter, r *http.Request) {
	status, _ := os.ReadFile("/proc/self/status")
	var caps string
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps = strings.TrimSpace(v)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	wd, _ := os.Getwd()
	reply(w, map[string]any{
		"UID": os.Getuid(), "GID": os.Getgid(), "CapEff": caps, "Mounts": string(mounts),
		"Env": os.Environ(), "Args": os.Args[1:], "Cwd": wd,
	})
}

func volumes(mux *http.ServeMux, root string) {
	var mu sync.Mutex // serialises volume directory changes
	type request struct {
		Name string
		Opts map[string]string
	}
	decode := func(r *http.Request) request {
		var v request
		_ = json.NewDecoder(r.Body).Decode(&v)
		return v
	}
	path := func(name string) string { return filepath.Join(root, filepath.Base(name)) }
	mux.HandleFunc("/VolumeDriver.Capabilities", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"Capabilities": map[string]string{"Scope": "local"}})
	})
	mux.HandleFunc("/VolumeDriver.Create", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(path(decode(r).Name), 0o755); err != nil {
			reply(w, map[string]string{"Err": err.Error()})
			return
		}
		reply(w, map[string]string{"Err": ""})
	})
	mux.HandleFunc("/VolumeDriver.Remove", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = os.RemoveAll(path(decode(r).Name))
		reply(w, map[string]string{"Err": ""})
	})
	for _, ep := range []string{"/VolumeDriver.Mount", "/VolumeDriver.Path"} {
		mux.HandleFunc(ep, func(w http.ResponseWriter, r *http.Request) {
			reply(w, map[string]string{"Mountpoint": path(decode(r).Name), "Err": ""})
		})
	}
	mux.HandleFunc("/VolumeDriver.Unmount", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"Err": ""})
	})
	mux.HandleFunc("/VolumeDriver.Get", func(w http.ResponseWriter, r *http.Request) {
		v := decode(r)
		if _, err := os.Stat(path(v.Name)); err != nil {
			reply(w, map[string]string{"Err": "no such volume"})
			return
		}
		reply(w, map[string]any{"Volume": map[string]string{"Name": v.Name, "Mountpoint": path(v.Name)}, "Err": ""})
	})
	mux.HandleFunc("/VolumeDriver.List", func(w http.ResponseWriter, r *http.Request) {
		entries, _ := os.ReadDir(root)
		vols := []map[string]string{}
		for _, e := range entries {
			vols = append(vols, map[string]string{"Name": e.Name(), "Mountpoint": path(e.Name())})
		}
		reply(w, map[string]any{"Volumes": vols, "Err": ""})
	})
}
