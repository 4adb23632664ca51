package manager

import "time"

// Event is a plugin lifecycle event, shown by GET /events as Type "plugin".
type Event struct {
	Action string // create, pull, enable, disable, remove
	// ID is the plugin ID, or for pulls the remote reference (as dockerd).
	ID string
	// Name is the plugin name as the client gave it (dockerd echoes the raw
	// request name for enable, disable and remove).
	Name string
	// Attributes are extra actor attributes (exitCode of a plugin that died).
	Attributes map[string]string
	Time       time.Time
}

// EventSink receives events. Publish must not block for long: it is called
// from request paths.
type EventSink interface {
	Publish(Event)
}

type discardEvents struct{}

func (discardEvents) Publish(Event) {}
