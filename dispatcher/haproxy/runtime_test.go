package haproxy_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
)

// fakeAPI is a runtime API socket that answers the commands it knows and
// leaves any other one hanging until the caller gives up.
func fakeAPI(t *testing.T, answers map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				cmd, _ := bufio.NewReader(c).ReadString('\n')
				answer, ok := answers[strings.TrimSuffix(cmd, "\n")]
				if !ok {
					_, _ = c.Read(make([]byte, 1)) // until the caller hangs up
					return
				}
				_, _ = c.Write([]byte(answer))
			}()
		}
	}()
	return path
}

const backends = "# name\napp\n\n"

func TestACommandThatGetsNoAnswerTimesOut(t *testing.T) {
	sock := fakeAPI(t, map[string]string{"show backend": backends})
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = d.Drain(context.Background(), "mitosis-1")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "show servers state app") {
		t.Errorf("Drain against a silent HAProxy: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s with a 100ms timeout", took)
	}
}

func TestACancelledContextInterruptsACommand(t *testing.T) {
	sock := fakeAPI(t, map[string]string{"show backend": backends})
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := d.Sessions(ctx, "mitosis-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Sessions with its context cancelled: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to notice the cancellation", took)
	}
}

// HAProxy answers errors as text on a connection that worked; whatever
// does not look like the command's success is an error, never a guess.
func TestAnswersThatAreNotSuccessAreErrors(t *testing.T) {
	header := "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
	for name, tc := range map[string]struct {
		answers map[string]string
		call    func(*haproxy.Dispatcher) error
		want    string
	}{
		"show backend refused": {
			answers: map[string]string{"show backend": "Permission denied\n\n"},
			want:    `"show backend": Permission denied`,
		},
		"unknown state format": {
			answers: map[string]string{"show backend": backends, "show servers state app": "2\n" + header + "\n"},
			call:    func(d *haproxy.Dispatcher) error { return d.Remove(context.Background(), "mitosis-1") },
			want:    `"show servers state app": 2`,
		},
		"a state line cut short": {
			answers: map[string]string{"show backend": backends, "show servers state app": "1\n" + header + "3 app 1 mitosis-1 127.0.0.1 2\n\n"},
			call:    func(d *haproxy.Dispatcher) error { return d.Remove(context.Background(), "mitosis-1") },
			want:    "unreadable line",
		},
		"a state column missing": {
			answers: map[string]string{"show backend": backends, "show servers state app": "1\n# be_id be_name srv_name\n3 app mitosis-1\n\n"},
			call:    func(d *haproxy.Dispatcher) error { return d.Attach(context.Background(), "mitosis-1", "127.0.0.1:1") },
			want:    "no column srv_addr",
		},
		"drain answered with a message": {
			answers: map[string]string{"show backend": backends, "show servers state app": "1\n" + header + "\n",
				"set server app/mitosis-1 state drain": "Require 'backend/server'.\n\n"},
			call: func(d *haproxy.Dispatcher) error { return d.Drain(context.Background(), "mitosis-1") },
			want: `draining app/mitosis-1: haproxy: "set server app/mitosis-1 state drain": Require 'backend/server'.`,
		},
		"show stat answered with a message": {
			answers: map[string]string{"show backend": backends, "show stat app 4 -1": "Unknown command.\n\n"},
			call:    func(d *haproxy.Dispatcher) error { _, err := d.Sessions(context.Background(), "mitosis-1"); return err },
			want:    "Unknown command.",
		},
	} {
		t.Run(name, func(t *testing.T) {
			sock := fakeAPI(t, tc.answers)
			d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Timeout: time.Second})
			if err == nil && tc.call != nil {
				err = tc.call(d)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestItTouchesOnlyItsServersAndClones: a clone of its cluster is named
// <cluster>-c<n> (or, recorded before, mitosis-<operation id>); any other
// server that is not configured, another cluster's clone included, is
// refused before a command is sent; without a cluster, no <cluster>-c<n>.
func TestItTouchesOnlyItsServersAndClones(t *testing.T) {
	sock := fakeAPI(t, map[string]string{"show backend": backends}) // other commands hang
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Servers: []string{"web-1"}, Cluster: "web", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for node, mine := range map[string]bool{"web-1": true, "web-c17": true, "mitosis-web-20260101t000045000-4": true, "web-2": false, "web-c07": false, "api-c3": false, "db": false} {
		err := d.Drain(context.Background(), node)
		if refused := err != nil && strings.Contains(err.Error(), "refusing to touch"); refused == mine {
			t.Errorf("Drain(%s): %v; want refused: %v", node, err, !mine)
		}
	}
	anon, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Servers: []string{"web-1"}, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Drain(context.Background(), "web-c17"); err == nil || !strings.Contains(err.Error(), "refusing to touch") {
		t.Errorf("without a cluster, Drain(web-c17): %v; want refused", err)
	}
}
