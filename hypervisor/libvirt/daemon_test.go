package libvirt

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

const installHint = "apt-get install -y --no-install-recommends libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils busybox-static"

// daemon is a libvirtd a test started: never as root (as nobody when the
// test runs as root), on a socket in a directory of its own, so tests
// never share one and nothing of the host's libvirt is touched.
type daemon struct {
	Dir      string // owned by the daemon's user; its socket, state and logs
	Socket   string
	UID, GID int
	pid      int
	log      *lockedBuffer
}

// startDaemon starts an unprivileged libvirtd with extra lines of
// libvirtd.conf, waits until it answers, and stops it (and any QEMU it
// left running) in t.Cleanup.
func startDaemon(t testing.TB, extraConf ...string) *daemon {
	t.Helper()
	return startDaemonOpts(t, daemonOpts{conf: extraConf})
}

type daemonOpts struct {
	conf []string
	// cacheHome, if set, is the daemon's XDG_CACHE_HOME, kept between
	// runs: libvirt caches QEMU's capabilities there (probing them takes
	// ~2 s). Made and given to the daemon's user if needed.
	cacheHome string
}

func startDaemonOpts(t testing.TB, o daemonOpts) *daemon {
	t.Helper()
	extraConf := o.conf
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		t.Fatalf("libvirtd is missing (%v); install it: %s", err, installHint)
	}
	d := &daemon{UID: os.Getuid(), GID: os.Getgid(), log: &lockedBuffer{}}
	if d.UID == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root, the test daemon runs as nobody, who is missing: %v", err)
		}
		d.UID, _ = strconv.Atoi(u.Uid)
		d.GID, _ = strconv.Atoi(u.Gid)
	}
	// Not t.TempDir: its parent is root's and mode 0700. The socket path
	// must also stay under the 108 bytes of a unix socket address.
	dir, err := os.MkdirTemp("", "mitosis-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d.Dir, d.Socket = dir, filepath.Join(dir, "libvirt-sock")
	conf := append([]string{fmt.Sprintf("unix_sock_dir = %q", dir)}, extraConf...)
	confFile := filepath.Join(dir, "libvirtd.conf")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.chown(t, dir)
	d.chown(t, confFile)
	cacheHome := filepath.Join(dir, "cache")
	if o.cacheHome != "" && (d.UID == os.Getuid() || traversable(o.cacheHome)) {
		cacheHome = o.cacheHome
		if err := os.MkdirAll(cacheHome, 0o755); err != nil {
			t.Fatal(err)
		}
		d.chown(t, cacheHome)
	}

	args := []string{"-f", confFile}
	for _, l := range extraConf {
		if strings.HasPrefix(l, "listen_tls") {
			args = append(args, "--listen")
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C",
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_CACHE_HOME=" + cacheHome,
	}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.UID != os.Getuid() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(d.UID), Gid: uint32(d.GID)}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	d.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { d.stop(t, cmd, exited) })

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", d.Socket)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("libvirtd exited at start (%v):\n%s", err, d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd did not open %s within 10 s:\n%s", d.Socket, d.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// traversable reports whether every directory above path lets others
// through, so that the daemon's user can reach path.
func traversable(path string) bool {
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

func (d *daemon) chown(t testing.TB, path string) {
	t.Helper()
	if err := os.Chown(path, d.UID, d.GID); err != nil && os.Getuid() == 0 {
		t.Fatal(err)
	}
}

// connect opens a raw go-libvirt connection to uri ("test:///default",
// "qemu:///session") on the daemon, closed in t.Cleanup.
func (d *daemon) connect(t testing.TB, uri string) *lv.Libvirt {
	t.Helper()
	l := lv.NewWithDialer(dialers.NewLocal(dialers.WithSocket(d.Socket)))
	if err := l.ConnectToURI(lv.ConnectURI(uri)); err != nil {
		t.Fatalf("connecting to %s on %s: %v", uri, d.Socket, err)
	}
	t.Cleanup(func() { _ = l.Disconnect() })
	return l
}

// URI is the URI a Config names the daemon's driver by.
func (d *daemon) URI(driver, path string) string {
	return fmt.Sprintf("%s+unix://%s?socket=%s", driver, path, d.Socket)
}

// stop stops the QEMU processes a session daemon started (libvirtd leaves
// its guests running when it exits), then the daemon, by their PIDs.
func (d *daemon) stop(t testing.TB, cmd *exec.Cmd, exited chan error) {
	pids, _ := filepath.Glob(filepath.Join(d.Dir, "run", "libvirt", "qemu", "run", "*.pid"))
	// The session virtlogd it may have spawned for serial logs.
	pids = append(pids, filepath.Join(d.Dir, "run", "libvirt", "virtlogd.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		var st syscall.Stat_t
		// Only a process of the daemon's user: never a reused PID.
		if err == nil && pid > 1 && syscall.Stat(fmt.Sprintf("/proc/%d", pid), &st) == nil && int(st.Uid) == d.UID && d.UID != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if t.Failed() && testing.Verbose() {
		t.Logf("libvirtd log:\n%s", d.log)
	}
}

// lockedBuffer is the daemon's output, written by exec's copying
// goroutine while a failing test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
