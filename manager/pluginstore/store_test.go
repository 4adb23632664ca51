package pluginstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestAddThenReopen(t *testing.T) {
	s, root := openStore(t)
	want := []*Record{
		newRecord(idSpecA, "spec-a:latest"),
		newRecord(idBig, "localhost:5000/big:1.0"),
	}
	for _, r := range want {
		addRecord(t, s, r)
	}
	// Snapshots are sorted by name.
	slices.SortFunc(want, func(a, b *Record) int { return strings.Compare(a.Name(), b.Name()) })
	if diff := cmp.Diff(want, s.Snapshot().All()); diff != "" {
		t.Fatalf("records before reopen (-want +got):\n%s", diff)
	}

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, s2.Snapshot().All()); diff != "" {
		t.Errorf("records after reopen (-want +got):\n%s", diff)
	}
	for _, r := range want {
		got, ok := s2.Snapshot().Get(r.ID())
		if !ok || got.Name() != r.Name() {
			t.Errorf("Get(%s) = (%v, %v) after reopen", r.ID(), got, ok)
		}
		got, ok = s2.Snapshot().ByName(r.Name())
		if !ok || got.ID() != r.ID() {
			t.Errorf("ByName(%s) = (%v, %v) after reopen", r.Name(), got, ok)
		}
		b, err := os.ReadFile(filepath.Join(s2.RootfsPath(r), "hello"))
		if err != nil || string(b) != "hi" {
			t.Errorf("rootfs of %s after reopen: %q, %v", r.Name(), b, err)
		}
	}
	// Nothing but the plugin directories is left at the root.
	if diff := cmp.Diff(sortedCopy([]string{idBig, idSpecA}), sortedCopy(dirEntries(t, root))); diff != "" {
		t.Errorf("store root (-want +got):\n%s", diff)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestReserve(t *testing.T) {
	s, _ := openStore(t)
	release, err := s.Reserve("x:latest")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve("x:latest")
	if !errdefs.IsConflict(err) {
		t.Fatalf("second Reserve = %v, want Conflict", err)
	}
	if got, want := err.Error(), "plugin x:latest already exists"; got != want {
		t.Errorf("second Reserve message = %q, want %q", got, want)
	}
	// Another name is unaffected.
	releaseY, err := s.Reserve("y:latest")
	if err != nil {
		t.Fatalf("Reserve of another name: %v", err)
	}
	releaseY()

	release()
	release() // idempotent
	release2, err := s.Reserve("x:latest")
	if err != nil {
		t.Fatalf("Reserve after release: %v", err)
	}
	// A name reserved and then added stays taken after release.
	addRecord(t, s, newRecord(idSpecA, "x:latest"))
	release2()
	if _, err := s.Reserve("x:latest"); !errdefs.IsConflict(err) {
		t.Errorf("Reserve of an installed name = %v, want Conflict", err)
	}
}

func TestAddConflicts(t *testing.T) {
	s, root := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "x:latest"))
	gen := s.Snapshot().Gen

	tests := []struct {
		name    string
		rec     *Record
		wantMsg string
	}{
		{name: "same name", rec: newRecord(idBig, "x:latest"), wantMsg: "plugin x:latest already exists"},
		{name: "same ID", rec: newRecord(idSpecA, "y:latest"), wantMsg: "plugin id " + idSpecA + " already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tryAdd(s, tt.rec)
			if !errdefs.IsConflict(err) {
				t.Fatalf("Add = %v, want Conflict", err)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Add message = %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
	if err := tryAdd(s, newRecord("not-an-id", "z:latest")); err == nil {
		t.Error("Add of a record with an invalid ID succeeded")
	}
	if got := s.Snapshot().Gen; got != gen {
		t.Errorf("failed Adds changed Gen from %d to %d", gen, got)
	}
	if diff := cmp.Diff([]string{idSpecA}, dirEntries(t, root)); diff != "" {
		t.Errorf("store root after failed Adds (-want +got):\n%s", diff)
	}
}

func TestUpdateSnapshotsAreImmutable(t *testing.T) {
	s, root := openStore(t)
	orig := newRecord(idSpecA, "spec-a:latest")
	addRecord(t, s, orig)
	before := s.Snapshot()
	beforeRec, _ := before.Get(idSpecA)
	beforeCopy := beforeRec.Clone()

	next := beforeRec.Clone()
	next.Plugin.Enabled = true
	next.Plugin.Settings.Env = []string{"DEBUG=5"}
	if err := s.Update(next); err != nil {
		t.Fatal(err)
	}
	after := s.Snapshot()
	if after.Gen <= before.Gen {
		t.Errorf("Gen did not increase: %d -> %d", before.Gen, after.Gen)
	}
	got, _ := after.Get(idSpecA)
	if diff := cmp.Diff(next, got); diff != "" {
		t.Errorf("new snapshot (-want +got):\n%s", diff)
	}
	if got, _ := after.ByName("spec-a:latest"); got != next {
		t.Error("ByName in the new snapshot does not return the updated record")
	}
	if r, err := after.Resolve("spec-a"); err != nil || r != next {
		t.Errorf("Resolve in the new snapshot = (%v, %v), want the updated record", r, err)
	}

	// The old snapshot still shows the old record, unchanged.
	old, _ := before.Get(idSpecA)
	if old != beforeRec {
		t.Error("old snapshot's record was replaced")
	}
	if diff := cmp.Diff(beforeCopy, old); diff != "" {
		t.Errorf("old snapshot's record changed (-was +now):\n%s", diff)
	}
	if all := before.All(); len(all) != 1 || all[0] != beforeRec {
		t.Errorf("old snapshot's list changed: %v", all)
	}

	// The update is persistent.
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	reread, _ := s2.Snapshot().Get(idSpecA)
	if diff := cmp.Diff(next, reread); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

func TestUpdateErrors(t *testing.T) {
	s, _ := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	gen := s.Snapshot().Gen

	if err := s.Update(newRecord(idBig, "big:latest")); !errdefs.IsNotFound(err) {
		t.Errorf("Update of an unknown ID = %v, want NotFound", err)
	}
	renamed := newRecord(idSpecA, "other:latest")
	if err := s.Update(renamed); err == nil {
		t.Error("Update that renames succeeded")
	}
	if got := s.Snapshot().Gen; got != gen {
		t.Errorf("failed Updates changed Gen from %d to %d", gen, got)
	}
	if r, _ := s.Snapshot().Get(idSpecA); r.Name() != "spec-a:latest" {
		t.Errorf("record renamed to %q", r.Name())
	}
}

func TestRemove(t *testing.T) {
	s, root := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	addRecord(t, s, newRecord(idBig, "big:1.0"))
	before := s.Snapshot()

	var unmounted string
	err := s.Remove(idSpecA, func(dir string) error {
		unmounted = dir
		if _, err := os.Stat(filepath.Join(dir, rootfsDir, "hello")); err != nil {
			t.Errorf("unmount sees no rootfs: %v", err)
		}
		return errors.New("unmount failure is only logged")
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, ".removing-"+idSpecA); unmounted != want {
		t.Errorf("unmount ran on %q, want %q", unmounted, want)
	}
	if diff := cmp.Diff([]string{idBig}, dirEntries(t, root)); diff != "" {
		t.Errorf("store root after Remove (-want +got):\n%s", diff)
	}
	after := s.Snapshot()
	if after.Gen <= before.Gen {
		t.Errorf("Gen did not increase: %d -> %d", before.Gen, after.Gen)
	}
	if _, ok := after.Get(idSpecA); ok {
		t.Error("removed plugin still in the snapshot")
	}
	if _, ok := after.ByName("spec-a:latest"); ok {
		t.Error("removed plugin still found by name")
	}
	if _, ok := before.Get(idSpecA); !ok {
		t.Error("removal changed an older snapshot")
	}
	if err := s.Remove(idSpecA, nil); !errdefs.IsNotFound(err) {
		t.Errorf("second Remove = %v, want NotFound", err)
	}
	// The name is free again.
	addRecord(t, s, newRecord(idA1, "spec-a:latest"))

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"big:1.0", "spec-a:latest"}, names(s2.Snapshot())); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if r, _ := s2.Snapshot().ByName("spec-a:latest"); r.ID() != idA1 {
		t.Errorf("spec-a:latest has ID %s after reopen, want %s", r.ID(), idA1)
	}
}

// TestRemoveReadOnlyRootfs: a rootfs with read-only directories is still
// deleted. As root, permissions are not checked and this always passes; it
// matters for unprivileged runs (rootless use, `make test` as a user).
func TestRemoveReadOnlyRootfs(t *testing.T) {
	s, root := openStore(t)
	t.Cleanup(func() { makeWritable(root) }) // so that TempDir can clean up
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	ro := filepath.Join(s.Dir(idSpecA), "rootfs", "ro")
	if err := os.MkdirAll(filepath.Join(ro, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "sub", "f"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(ro, "sub"), ro} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(idSpecA, nil); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := dirEntries(t, root); len(got) != 0 {
		t.Errorf("store root after Remove: %v", got)
	}
}

// makeWritable gives the owner write access to every directory under dir.
func makeWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}

func TestOpenCleansLeftovers(t *testing.T) {
	s, root := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))

	// An interrupted create: a staged directory, complete with a record.
	staged, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(staged, recordFile), newRecord(idBig, "big:1.0")); err != nil {
		t.Fatal(err)
	}
	// An interrupted remove, with a read-only directory inside.
	removing := filepath.Join(root, ".removing-"+idA1)
	if err := os.MkdirAll(filepath.Join(removing, "rootfs", "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(removing, "rootfs", "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	// Unrelated entries are left alone.
	if err := os.WriteFile(filepath.Join(root, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "not-a-plugin"), 0o755); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy([]string{"README", idSpecA, "not-a-plugin"}), sortedCopy(dirEntries(t, root))); diff != "" {
		t.Errorf("store root after Open (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"spec-a:latest"}, names(s2.Snapshot())); diff != "" {
		t.Errorf("records after Open (-want +got):\n%s", diff)
	}
}

func TestOpenSkipsBadRecords(t *testing.T) {
	s, root := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	addRecord(t, s, newRecord(idBig, "big:1.0"))
	addRecord(t, s, newRecord(idA1, "twin:latest"))

	tests := []struct {
		name   string
		id     string
		damage func(path string) error
	}{
		{name: "garbage record", id: idBig, damage: func(p string) error {
			return os.WriteFile(p, []byte("{not json"), 0o600)
		}},
		{name: "missing record", id: idA1, damage: os.Remove},
	}
	for _, tt := range tests {
		if err := tt.damage(filepath.Join(root, tt.id, recordFile)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	// A record whose ID is not its directory's name.
	mismatch := newRecord(idA2, "mismatch:latest")
	dir := filepath.Join(root, strings.Repeat("c", 64))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, recordFile), mismatch); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(root)
	if err != nil {
		t.Fatalf("Open with damaged records: %v", err)
	}
	if diff := cmp.Diff([]string{"spec-a:latest"}, names(s2.Snapshot())); diff != "" {
		t.Errorf("records after Open (-want +got):\n%s", diff)
	}
}

func TestGenIncreasesOnEveryChange(t *testing.T) {
	s, _ := openStore(t)
	last := s.Snapshot().Gen
	step := func(what string) {
		t.Helper()
		g := s.Snapshot().Gen
		if g <= last {
			t.Errorf("after %s Gen = %d, not above %d", what, g, last)
		}
		last = g
	}
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	step("Add")
	addRecord(t, s, newRecord(idBig, "big:1.0"))
	step("second Add")
	r, _ := s.Snapshot().Get(idSpecA)
	next := r.Clone()
	next.Plugin.Enabled = true
	if err := s.Update(next); err != nil {
		t.Fatal(err)
	}
	step("Update")
	if err := s.Update(next.Clone()); err != nil {
		t.Fatal(err)
	}
	step("Update with equal content")
	if err := s.Remove(idBig, nil); err != nil {
		t.Fatal(err)
	}
	step("Remove")

	// Reservations and staging are not changes.
	release, err := s.Reserve("z:latest")
	if err != nil {
		t.Fatal(err)
	}
	release()
	staged, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	s.Discard(staged)
	if g := s.Snapshot().Gen; g != last {
		t.Errorf("Reserve/Stage/Discard changed Gen from %d to %d", last, g)
	}
}

func TestStageAndDiscard(t *testing.T) {
	s, root := openStore(t)
	staged, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(staged) != root {
		t.Errorf("staged directory %s is not under the root %s", staged, root)
	}
	if base := filepath.Base(staged); len(base) <= len(tmpPrefix) || base[:len(tmpPrefix)] != tmpPrefix {
		t.Errorf("staged directory %s lacks the %s prefix", staged, tmpPrefix)
	}
	if got := StagedRootfs(staged); got != filepath.Join(staged, "rootfs") {
		t.Errorf("StagedRootfs = %s", got)
	}
	s.Discard(staged)
	s.Discard("") // no-op
	if got := dirEntries(t, root); len(got) != 0 {
		t.Errorf("store root after Discard: %v", got)
	}
}

func TestRecordClone(t *testing.T) {
	r := newRecord(idSpecA, "spec-a:latest")
	c := r.Clone()
	if diff := cmp.Diff(r, c); diff != "" {
		t.Fatalf("Clone differs (-orig +clone):\n%s", diff)
	}
	*c.Plugin.Config.Mounts[0].Source = "/changed"
	c.Plugin.Config.Env[0].Settable[0] = "changed"
	c.Plugin.Settings.Env[0] = "DEBUG=9"
	c.Blobsums[0] = "changed"
	if diff := cmp.Diff(newRecord(idSpecA, "spec-a:latest"), r); diff != "" {
		t.Errorf("changing the clone changed the original (-want +got):\n%s", diff)
	}
}

// TestConcurrentReserveAdd: of 8 goroutines that reserve and add the same
// name, exactly one succeeds and every other one gets a Conflict.
func TestConcurrentReserveAdd(t *testing.T) {
	s, root := openStore(t)
	const n = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok        int
		conflicts int
		others    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			err := func() error {
				release, err := s.Reserve("race:latest")
				if err != nil {
					return err
				}
				defer release()
				return tryAdd(s, newRecord(NewID(), "race:latest"))
			}()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errdefs.IsConflict(err):
				conflicts++
			default:
				others = append(others, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok != 1 || conflicts != n-1 || len(others) != 0 {
		t.Fatalf("successes = %d, conflicts = %d, other errors = %v; want 1, %d, none", ok, conflicts, others, n-1)
	}
	if got := len(dirEntries(t, root)); got != 1 {
		t.Errorf("store root holds %d entries, want 1", got)
	}
	if got := len(s.Snapshot().All()); got != 1 {
		t.Errorf("snapshot holds %d records, want 1", got)
	}
}

// TestConcurrentReadersAndWriters runs snapshot readers against updates
// under the race detector.
func TestConcurrentReadersAndWriters(t *testing.T) {
	s, _ := openStore(t)
	addRecord(t, s, newRecord(idSpecA, "spec-a:latest"))
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				snap := s.Snapshot()
				r, err := snap.Resolve("spec-a")
				if err != nil {
					t.Errorf("Resolve during updates: %v", err)
					return
				}
				_ = r.Plugin.Settings.Env[0]
				_ = len(snap.All())
			}
		})
	}
	for i := range 20 {
		r, _ := s.Snapshot().Get(idSpecA)
		next := r.Clone()
		next.Plugin.Settings.Env = []string{"DEBUG=" + string(rune('a'+i))}
		if err := s.Update(next); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}
