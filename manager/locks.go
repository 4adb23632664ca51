package manager

import (
	"context"
	"sync"
)

// keyLocks is a set of mutexes keyed by plugin ID, so that operations on one
// plugin are serialised without blocking the others. Lock order: a plugin's
// key lock before the store's own mutex, never the reverse.
type keyLocks struct {
	mu    sync.Mutex               // guards locks
	locks map[string]*keyLockEntry // present while held or waited for
}

type keyLockEntry struct {
	ch   chan struct{} // holds one token while the lock is held
	refs int           // holders plus waiters; the entry is dropped at 0
}

// lock takes the lock for key, or returns ctx's error if ctx ends first.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLockEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyLockEntry{ch: make(chan struct{}, 1)}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()

	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		k.release(key, e)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			k.release(key, e)
		})
	}, nil
}

func (k *keyLocks) release(key string, e *keyLockEntry) {
	k.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}
