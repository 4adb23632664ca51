package manager

import "github.com/pluginsd/pluginsd/manager/runtime"

// Discovery publishes running plugins somewhere other programs find them
// (manager/legacy: where engines without managed plugins look for legacy
// plugins). The manager tells it when a plugin's socket starts serving and
// when it stops; it knows nothing of how plugins are published.
//
// Calls for one plugin never overlap and come in order (Up, Down, Up...,
// possibly Down twice); calls for different plugins may be concurrent.
// Neither may block for long: they run on enable, disable and the
// supervisor's restarts. Failures are the implementation's to log.
type Discovery interface {
	// Up: plugin p accepts connections on socket (after an enable, a
	// restart after a crash, a start or an adoption at start-up).
	Up(p *Plugin, socket string)
	// Down: the socket of plugin id is about to go away, or has (a crash):
	// disable, remove, shutdown without live-restore. A plugin that keeps
	// running while pluginsd stops (live-restore) stays published.
	Down(id string)
}

// published tells the discovery that plugin id serves through task.
func (m *Manager) published(id string, task *runtime.Task) {
	if m.cfg.Discovery == nil || task == nil {
		return
	}
	if r, ok := m.ps.Snapshot().Get(id); ok {
		m.cfg.Discovery.Up(r, task.SocketPath())
	}
}

// withdrawn tells the discovery that plugin id no longer serves.
func (m *Manager) withdrawn(id string) {
	if m.cfg.Discovery != nil {
		m.cfg.Discovery.Down(id)
	}
}
