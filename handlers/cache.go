package handlers

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/manager"
)

// encodeCache keeps encoded plugin objects and the unfiltered list, per
// wire shape, for one generation of the plugin set. List and inspect are the
// hot read paths (agents poll them); with the cache they cost a map lookup
// and a write. Any change to any plugin starts a new generation, which
// empties the cache.
type encodeCache struct {
	cur atomic.Pointer[cacheState]
}

type cacheState struct {
	gen     uint64
	list    [2]atomic.Pointer[[]byte] // by shape
	plugins sync.Map                  // pluginKey -> []byte
}

type pluginKey struct {
	id    string
	shape int
}

// shape numbers the wire shapes: API versions below 1.51 see DockerVersion.
func shape(v string) int {
	if compat.ShowsDockerVersion(v) {
		return 1
	}
	return 0
}

// state returns the cache for gen, replacing an older one.
func (ec *encodeCache) state(gen uint64) *cacheState {
	for {
		st := ec.cur.Load()
		if st != nil && st.gen >= gen {
			if st.gen == gen {
				return st
			}
			return &cacheState{gen: gen} // a stale reader: don't cache
		}
		next := &cacheState{gen: gen}
		if ec.cur.CompareAndSwap(st, next) {
			return next
		}
	}
}

func (ec *encodeCache) list(gen uint64, v string) ([]byte, bool) {
	if b := ec.state(gen).list[shape(v)].Load(); b != nil {
		return *b, true
	}
	return nil, false
}

func (ec *encodeCache) encodePlugin(gen uint64, v string, p *manager.Plugin) ([]byte, error) {
	st := ec.state(gen)
	key := pluginKey{p.ID(), shape(v)}
	if b, ok := st.plugins.Load(key); ok {
		return b.([]byte), nil
	}
	b, err := compat.EncodeJSON(compat.Plugin(v, p.Plugin, p.DockerVersion))
	if err != nil {
		return nil, err
	}
	st.plugins.Store(key, b)
	return b, nil
}

// encodeList encodes ps as a JSON array ("[]" when empty, never null),
// caching the result when it is the unfiltered list.
func (ec *encodeCache) encodeList(gen uint64, v string, ps []*manager.Plugin, cacheIt bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, p := range ps {
		b, err := ec.encodePlugin(gen, v, p)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(bytes.TrimSuffix(b, []byte("\n")))
	}
	buf.WriteString("]\n")
	out := buf.Bytes()
	if cacheIt {
		ec.state(gen).list[shape(v)].Store(&out)
	}
	return out, nil
}
