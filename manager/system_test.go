package manager

import (
	"context"
	"regexp"
	"testing"
)

func TestEngineIDKept(t *testing.T) {
	root := t.TempDir()
	m, err := New(Config{DataRoot: root, LiveRestore: true})
	if err != nil {
		t.Fatal(err)
	}
	id := m.EngineID()
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("EngineID = %q, want a v4 UUID", id)
	}
	if again := m.EngineID(); again != id {
		t.Errorf("EngineID changed: %q then %q", id, again)
	}
	if m.DataRoot() != root || !m.LiveRestore() {
		t.Errorf("DataRoot %q, LiveRestore %v", m.DataRoot(), m.LiveRestore())
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err = New(Config{DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if got := m.EngineID(); got != id {
		t.Errorf("EngineID after a restart = %q, want %q", got, id)
	}
}

func TestStats(t *testing.T) {
	m, _ := newManager(t)
	if s := m.Stats(); s != (Stats{}) {
		t.Errorf("Stats of a new manager = %+v", s)
	}
	m.restarts.Add(2)
	m.pulled.Add(10)
	m.pushed.Add(5)
	if s := m.Stats(); s != (Stats{Restarts: 2, BytesPulled: 10, BytesPushed: 5}) {
		t.Errorf("Stats = %+v", s)
	}
}
