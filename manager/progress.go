package manager

// Progress is one step of a pull, upgrade or push, in domain terms; handlers
// turn it into Docker's JSON progress stream.
type Progress struct {
	// ID is what the step is about: a 12-hex short digest for blobs, the tag
	// for "Pulling from", empty for repository-wide lines.
	ID string
	// Status is Docker's progress vocabulary: "Pulling from x",
	// "Downloading", "Download complete", "Extracting", "Complete",
	// "Preparing", "Uploading", "Upload complete"...
	Status string
	// Detail marks a progress-type line (Docker always sends a
	// progressDetail object with those, {} when empty); plain status lines
	// ("Pulling from", "Digest:") have none.
	Detail bool
	// Current and Total are byte counts for Downloading/Extracting/Uploading.
	Current, Total int64
	// Aux is the final machine-readable result of a push.
	Aux *PushResult
}

// PushResult is the aux object that ends a push stream.
type PushResult struct {
	Tag    string
	Digest string
	Size   int
}

// ProgressFunc receives progress; it may be called from several goroutines
// at once and must not block for long. A nil ProgressFunc discards.
type ProgressFunc func(Progress)

func (f ProgressFunc) send(p Progress) {
	if f != nil {
		f(p)
	}
}

// status sends a plain status line.
func (f ProgressFunc) status(id, status string) { f.send(Progress{ID: id, Status: status}) }

// step sends a progress-type line without counts.
func (f ProgressFunc) step(id, status string) { f.send(Progress{ID: id, Status: status, Detail: true}) }
