package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeMounter records bind mounts instead of making them.
type fakeMounter struct {
	mounts map[string]string // target -> source
	fail   error             // returned by bind when set
}

func (f *fakeMounter) bind(source, target string) error {
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.mounts[target]; ok {
		return errors.New("already mounted: " + target)
	}
	f.mounts[target] = source
	return nil
}

func (f *fakeMounter) unbind(target string) error {
	if _, ok := f.mounts[target]; !ok {
		return errors.New("not mounted: " + target)
	}
	delete(f.mounts, target)
	return nil
}

func newTestDriver(t *testing.T) (*driver, *fakeMounter) {
	t.Helper()
	root := t.TempDir()
	store, publish := filepath.Join(root, "store"), filepath.Join(root, "publish")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &fakeMounter{mounts: map[string]string{}}
	d := newDriver(store, publish, m)
	if err := d.cleanPublished(); err != nil {
		t.Fatal(err)
	}
	return d, m
}

func TestNames(t *testing.T) {
	d, _ := newTestDriver(t)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", ".hidden", "-x", "a\x00b", strings.Repeat("a", 129)} {
		if err := d.Create(bad, nil); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	for _, good := range []string{"a", "web-data", "db_1.bak", strings.Repeat("a", 128)} {
		if err := d.Create(good, nil); err != nil {
			t.Errorf("Create(%q): %v", good, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(d.store))
	if len(entries) != 2 {
		t.Errorf("something was written beside the store: %v", entries)
	}
}

func TestCreateOptions(t *testing.T) {
	d, _ := newTestDriver(t)
	if err := d.Create("v", map[string]string{"mode": "0750"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.store, "v"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o750 {
		t.Errorf("mode %o, want 750", got)
	}
	// Again without options: fine. With options: refused, they would be lost.
	if err := d.Create("v", nil); err != nil {
		t.Errorf("second Create: %v", err)
	}
	if err := d.Create("v", map[string]string{"mode": "0700"}); err == nil {
		t.Error("second Create with options succeeded")
	}
	for _, opts := range []map[string]string{{"mode": "rwx"}, {"mode": "17777"}, {"uid": "-1"}, {"size": "1G"}} {
		if err := d.Create("w", opts); err == nil {
			t.Errorf("Create with %v succeeded", opts)
		}
	}
	if _, err := os.Stat(filepath.Join(d.store, "w")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused Create left its directory: %v", err)
	}
}

func TestMountSharing(t *testing.T) {
	d, m := newTestDriver(t)
	if err := d.Create("v", nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Path("v"); p != "" {
		t.Errorf("Path of an unmounted volume is %q", p)
	}
	mp1, err := d.Mount("v", "c1")
	if err != nil {
		t.Fatal(err)
	}
	mp2, err := d.Mount("v", "c2")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(d.publish, "v")
	if mp1 != want || mp2 != want {
		t.Errorf("mountpoints %q %q, want %q", mp1, mp2, want)
	}
	if len(m.mounts) != 1 || m.mounts[want] != filepath.Join(d.store, "v") {
		t.Errorf("mounts %v", m.mounts)
	}
	if p, _ := d.Path("v"); p != want {
		t.Errorf("Path %q, want %q", p, want)
	}
	if err := d.Remove("v"); err == nil {
		t.Error("Remove of a mounted volume succeeded")
	}
	if err := d.Unmount("v", "c1"); err != nil {
		t.Fatal(err)
	}
	if len(m.mounts) != 1 {
		t.Error("first Unmount removed the mount the second caller still uses")
	}
	if err := d.Unmount("v", "stranger"); err != nil {
		t.Errorf("Unmount by an unknown ID: %v", err)
	}
	if err := d.Unmount("v", "c2"); err != nil {
		t.Fatal(err)
	}
	if len(m.mounts) != 0 {
		t.Errorf("mounts left: %v", m.mounts)
	}
	if _, err := os.Stat(want); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mountpoint directory left: %v", err)
	}
	if err := d.Remove("v"); err != nil {
		t.Errorf("Remove: %v", err)
	}
}

func TestMountFailure(t *testing.T) {
	d, m := newTestDriver(t)
	if _, err := d.Mount("missing", "c1"); !errors.Is(err, errNoVolume) {
		t.Errorf("Mount of a missing volume: %v", err)
	}
	if err := d.Create("v", nil); err != nil {
		t.Fatal(err)
	}
	m.fail = errors.New("operation not permitted")
	if _, err := d.Mount("v", "c1"); err == nil {
		t.Fatal("Mount succeeded")
	}
	if _, err := os.Stat(filepath.Join(d.publish, "v")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Mount left its mountpoint: %v", err)
	}
	if err := d.Remove("v"); err != nil {
		t.Errorf("a failed Mount still counts as a user: %v", err)
	}
}

func TestListSkipsOtherEntries(t *testing.T) {
	d, _ := newTestDriver(t)
	for _, n := range []string{"b", "a"} {
		if err := d.Create(n, nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(d.store, "file"), nil, 0o644)
	_ = os.Mkdir(filepath.Join(d.store, "lost+found"), 0o700)
	_ = os.Symlink("/etc", filepath.Join(d.store, "link"))
	vs, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("List = %v, want a,b", names)
	}
	if _, err := d.Get("link"); !errors.Is(err, errNoVolume) {
		t.Errorf("Get of a symlink: %v", err)
	}
	if err := d.Remove("link"); !errors.Is(err, errNoVolume) {
		t.Errorf("Remove of a symlink: %v", err)
	}
}

func TestCleanPublishedAndClose(t *testing.T) {
	d, m := newTestDriver(t)
	// What a crashed run left: a mounted and an unmounted directory.
	for _, n := range []string{"old1", "old2"} {
		if err := os.Mkdir(filepath.Join(d.publish, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m.mounts[filepath.Join(d.publish, "old1")] = "/somewhere"
	if err := d.cleanPublished(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(d.publish); len(entries) != 0 || len(m.mounts) != 0 {
		t.Errorf("left: %v, mounts %v", entries, m.mounts)
	}
	if err := d.Create("v", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Mount("v", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if len(m.mounts) != 0 {
		t.Errorf("Close left mounts: %v", m.mounts)
	}
	if _, err := d.Mount("v", "c2"); err == nil {
		t.Error("Mount after Close succeeded")
	}
}

func TestProtocol(t *testing.T) {
	d, _ := newTestDriver(t)
	srv := httptest.NewServer(newHandler(d))
	defer srv.Close()
	call := func(method, body string, wantStatus int, out any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/"+method, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s: status %d, want %d", method, resp.StatusCode, wantStatus)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
	var act struct{ Implements []string }
	call("Plugin.Activate", "", 200, &act)
	if len(act.Implements) != 1 || act.Implements[0] != "VolumeDriver" {
		t.Errorf("Activate: %+v", act)
	}
	var caps struct{ Capabilities struct{ Scope string } }
	call("VolumeDriver.Capabilities", "{}", 200, &caps)
	if caps.Capabilities.Scope != "local" {
		t.Errorf("Capabilities: %+v", caps)
	}
	var e errResponse
	call("VolumeDriver.Create", `{"Name":"v","Opts":{"mode":"0700"}}`, 200, &e)
	call("VolumeDriver.Create", `{"Name":"../v"}`, 500, &e)
	if !strings.Contains(e.Err, "invalid volume name") {
		t.Errorf("Err = %q", e.Err)
	}
	call("VolumeDriver.Create", `not json`, 500, &e)
	var mp mountpointResponse
	call("VolumeDriver.Mount", `{"Name":"v","ID":"c1"}`, 200, &mp)
	if mp.Mountpoint != filepath.Join(d.publish, "v") {
		t.Errorf("Mount: %+v", mp)
	}
	var get getResponse
	call("VolumeDriver.Get", `{"Name":"v"}`, 200, &get)
	if get.Volume.Name != "v" || get.Volume.Mountpoint != mp.Mountpoint {
		t.Errorf("Get: %+v", get)
	}
	call("VolumeDriver.Get", `{"Name":"nope"}`, 500, &get)
	if !strings.Contains(get.Err, "no such volume") {
		t.Errorf("Get of a missing volume: %+v", get)
	}
	var list listResponse
	call("VolumeDriver.List", "", 200, &list)
	if len(list.Volumes) != 1 || list.Volumes[0].Name != "v" {
		t.Errorf("List: %+v", list)
	}
	call("VolumeDriver.Unmount", `{"Name":"v","ID":"c1"}`, 200, &e)
	call("VolumeDriver.Path", `{"Name":"v"}`, 200, &mp)
	if mp.Mountpoint != "" {
		t.Errorf("Path after Unmount: %+v", mp)
	}
	call("VolumeDriver.Remove", `{"Name":"v"}`, 200, &e)
	call("VolumeDriver.List", "{}", 200, &list)
	if len(list.Volumes) != 0 {
		t.Errorf("List after Remove: %+v", list)
	}

	resp, err := http.Get(srv.URL + "/VolumeDriver.List")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
}
