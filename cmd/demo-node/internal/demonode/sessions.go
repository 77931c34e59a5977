package demonode

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// maxSessions bounds the table, so that a flood of cookie-less requests
// cannot exhaust memory.
const maxSessions = 100_000

// session is one client's session, kept by cookie.
type session struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Requests int       `json:"requests"`
	// Inherited marks a session restored from a template's state file.
	// A clone's finalize purges every session, marked or not: a live
	// clone of a VM has its template's sessions unmarked.
	Inherited bool `json:"inherited,omitempty"`
}

// sessions is the session table. It is not safe for concurrent use: App
// guards it.
type sessions struct {
	idle time.Duration
	byID map[string]*session
}

func newSessions(idle time.Duration) *sessions {
	return &sessions{idle: idle, byID: map[string]*session{}}
}

// get returns the live session id, if any.
func (s *sessions) get(id string, now time.Time) (*session, bool) {
	ss, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if now.Sub(ss.LastSeen) >= s.idle {
		delete(s.byID, id)
		return nil, false
	}
	return ss, true
}

// create starts a session; false when the table is full.
func (s *sessions) create(now time.Time) (*session, bool) {
	if len(s.byID) >= maxSessions {
		s.expire(now)
		if len(s.byID) >= maxSessions {
			return nil, false
		}
	}
	ss := &session{ID: newID(), Created: now, LastSeen: now}
	s.byID[ss.ID] = ss
	return ss, true
}

// expire ends the sessions idle for the idle timeout.
func (s *sessions) expire(now time.Time) {
	for id, ss := range s.byID {
		if now.Sub(ss.LastSeen) >= s.idle {
			delete(s.byID, id)
		}
	}
}

// count returns how many sessions are live at now.
func (s *sessions) count(now time.Time) int {
	s.expire(now)
	return len(s.byID)
}

// purge ends the sessions that match drop.
func (s *sessions) purge(drop func(*session) bool) int {
	n := 0
	for id, ss := range s.byID {
		if drop(ss) {
			delete(s.byID, id)
			n++
		}
	}
	return n
}

// list returns copies of the live sessions.
func (s *sessions) list(now time.Time) []session {
	s.expire(now)
	out := make([]session, 0, len(s.byID))
	for _, ss := range s.byID {
		out = append(out, *ss)
	}
	return out
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
