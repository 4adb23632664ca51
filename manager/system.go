package manager

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// Stats are the manager's counters since it started (for metrics).
type Stats struct {
	// Restarts counts enabled plugins started again after they died.
	Restarts int64
	// BytesPulled counts layer bytes downloaded from registries by pulls
	// and upgrades (layers already stored are not downloaded again).
	BytesPulled int64
	// BytesPushed counts blob bytes uploaded to registries by pushes
	// (blobs the registry already had are not uploaded).
	BytesPushed int64
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{Restarts: m.restarts.Load(), BytesPulled: m.pulled.Load(), BytesPushed: m.pushed.Load()}
}

// DataRoot is the directory the manager keeps its state in.
func (m *Manager) DataRoot() string { return m.cfg.DataRoot }

// LiveRestore tells whether plugins keep running while pluginsd restarts.
func (m *Manager) LiveRestore() bool { return m.cfg.LiveRestore }

// engineIDFile holds EngineID under the data root (dockerd keeps its
// engine ID in <data-root>/engine-id too).
const engineIDFile = "engine-id"

// EngineID identifies this pluginsd instance (GET /info's ID): a random
// UUID made on first use and kept in the data root, so it survives
// restarts. If it cannot be kept, a fresh one is used for this run.
func (m *Manager) EngineID() string {
	m.idOnce.Do(func() {
		id, err := loadEngineID(filepath.Join(m.cfg.DataRoot, engineIDFile))
		if err != nil {
			logrus.WithError(err).Warn("engine ID: using a temporary one")
		}
		m.engineID = id
	})
	return m.engineID
}

// loadEngineID reads path, or creates it with a new ID. It always returns
// an ID.
func loadEngineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return newUUID(), err
	}
	id := newUUID()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return id, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return id, err
	}
	return id, nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
