package demonode

import (
	"testing"
	"time"
)

func TestSessionsEndWhenIdle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newSessions(10 * time.Second)
	a, _ := s.create(t0)
	b, _ := s.create(t0.Add(5 * time.Second))
	if a.ID == b.ID || len(a.ID) != 32 {
		t.Fatalf("ids %q %q: want two distinct 128-bit ids", a.ID, b.ID)
	}
	if n := s.count(t0.Add(9 * time.Second)); n != 2 {
		t.Errorf("at 9 s: %d sessions, want 2", n)
	}
	if _, ok := s.get(a.ID, t0.Add(10*time.Second)); ok {
		t.Error("a session idle for the idle timeout is still live")
	}
	if n := s.count(t0.Add(14 * time.Second)); n != 1 {
		t.Errorf("at 14 s: %d sessions, want b only", n)
	}
	if n := s.count(t0.Add(15 * time.Second)); n != 0 {
		t.Errorf("at 15 s: %d sessions, want none", n)
	}
}

func TestAdmitKeepsASessionAliveAndCountsItsRequests(t *testing.T) {
	now := time.Unix(1000, 0)
	a := NewApp(AppOptions{ID: "n", CacheSize: 10, SessionIdle: 10 * time.Second, Now: func() time.Time { return now }})
	id, created, err := a.admit(t.Context(), "")
	if err != nil || !created {
		t.Fatalf("first request: created %v, %v", created, err)
	}
	a.release()
	for range 3 { // each request within the idle timeout keeps it alive
		now = now.Add(8 * time.Second)
		got, created, err := a.admit(t.Context(), id)
		if err != nil || created || got != id {
			t.Fatalf("request in session: %q created %v, %v; want %q", got, created, err, id)
		}
		a.release()
	}
	if n := a.Sessions(); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
	if l := a.sessions.list(now); len(l) != 1 || l[0].Requests != 4 {
		t.Errorf("sessions %+v, want one of 4 requests", l)
	}
	now = now.Add(10 * time.Second)
	if _, created, _ := a.admit(t.Context(), id); !created {
		t.Error("a request with an expired session's cookie: want a new session")
	}
	a.release()
}
