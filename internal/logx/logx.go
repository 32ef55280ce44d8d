// Package logx holds logging helpers shared by furrow's components.
package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter keeps a message that can repeat on every request or retry (a
// full disk refusing every write) from flooding the log. The first
// occurrence of a message is logged at once. Later occurrences of the
// same message and error within Every of the last line written are only
// counted; the next one after that is logged with repeated=<count since
// the last line> and since=<when the message first appeared>, so the log
// holds at most one line per message per Every however often it fires.
//
// A Limiter is safe for concurrent use. The zero value is not usable:
// use NewLimiter.
type Limiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	first, last time.Time // first seen; last line written
	repeated    int       // occurrences not logged since last
}

// NewLimiter returns a Limiter writing to log at most one line per
// message per every (default 10 s when every <= 0).
func NewLimiter(log *slog.Logger, every time.Duration) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	return &Limiter{log: log, every: every, now: time.Now, entries: map[string]*entry{}}
}

// Log logs msg at level with err and args, unless the same msg and err
// were logged within the last Every; then it only counts the occurrence.
// It reports whether a line was written.
func (l *Limiter) Log(level slog.Level, msg string, err error, args ...any) bool {
	if !l.log.Enabled(context.Background(), level) {
		return false
	}
	key := msg
	if err != nil {
		key += "\x00" + err.Error()
	}
	now := l.now()
	l.mu.Lock()
	e, ok := l.entries[key]
	if ok && now.Sub(e.last) < l.every {
		e.repeated++
		l.mu.Unlock()
		return false
	}
	if !ok {
		// Forget messages that went quiet, so the map stays small.
		for k, old := range l.entries {
			if now.Sub(old.last) >= l.every && old.repeated == 0 {
				delete(l.entries, k)
			}
		}
		e = &entry{first: now}
		l.entries[key] = e
	}
	repeated := e.repeated
	e.repeated, e.last = 0, now
	first := e.first
	l.mu.Unlock()

	if err != nil {
		args = append(args, "err", err)
	}
	if repeated > 0 {
		args = append(args, "repeated", repeated, "since", first.UTC().Format(time.RFC3339))
	}
	l.log.Log(context.Background(), level, msg, args...)
	return true
}

// Reset forgets msg (with every error), logging how many occurrences
// went unlogged since its last line, if any: call it when the condition
// behind the message has cleared.
func (l *Limiter) Reset(msg string) {
	l.mu.Lock()
	var suppressed int
	var first time.Time
	for k, e := range l.entries {
		if k == msg || len(k) > len(msg) && k[:len(msg)] == msg && k[len(msg)] == 0 {
			suppressed += e.repeated
			if first.IsZero() || e.first.Before(first) {
				first = e.first
			}
			delete(l.entries, k)
		}
	}
	l.mu.Unlock()
	if suppressed > 0 {
		l.log.Info(msg+" (no longer occurring)", "repeated", suppressed, "since", first.UTC().Format(time.RFC3339))
	}
}
