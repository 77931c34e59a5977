// Package libvirttest starts libvirt daemons and prepares a tiny QEMU
// guest for tests, as net/http/httptest does servers: an unprivileged
// session daemon (Start), a root system daemon isolated in a mount
// namespace of its own (StartSystem), the guest's kernel, initramfs and
// disk (PrepareGuest), and the in-memory counter the guest prints on its
// serial console (ReadCounter, WaitCounter). Only tests import it.
//
// Nothing here skips: a missing component fails the test and says how to
// install it (make deps).
package libvirttest

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
	"syscall"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// InstallHint says how to install what the tests need.
const InstallHint = "run `make deps` as root (Debian: apt-get install -y --no-install-recommends libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils busybox-static dnsmasq-base qemu-guest-agent)"

// Daemon is a libvirtd a test started, on a socket in a directory of its
// own, so tests never share one and nothing of the host's libvirt is
// touched. It is stopped, with every process it left, in t.Cleanup.
type Daemon struct {
	// Dir holds its socket, configuration, state and logs; the guests'
	// user can enter it.
	Dir    string
	Socket string
	// UID and GID are the user and group its guests (QEMU) run as: files
	// a guest reads belong to them (see Chown).
	UID, GID int
	// System is set for a root daemon (qemu:///system); else it is a
	// session daemon (qemu:///session) running as UID.
	System bool
	// PID is the process Start ran, libvirtd (StartSystem's is the
	// unshare that runs it), for a test that stops it with SIGSTOP: it
	// must send SIGCONT in its cleanup.
	PID     int
	log     *testenv.Buffer
	logFile string // the system daemon's output, instead of log
	stops   []func()
}

// Options configure Start.
type Options struct {
	// Conf is extra lines of libvirtd.conf.
	Conf []string
	// CacheHome, if set, is the session daemon's XDG_CACHE_HOME, kept
	// between runs: libvirt caches QEMU's capabilities there (probing
	// them takes ~2 s). Made and given to the daemon's user if needed.
	CacheHome string
}

// Start starts an unprivileged libvirtd (as nobody when the test runs as
// root) and waits until it answers.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	bin := lookPath(t, "libvirtd")
	d := &Daemon{UID: os.Getuid(), GID: os.Getgid(), log: &testenv.Buffer{}}
	if d.UID == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root, the test daemon runs as nobody, who is missing: %v", err)
		}
		d.UID, _ = strconv.Atoi(u.Uid)
		d.GID, _ = strconv.Atoi(u.Gid)
	}
	d.makeDir(t, "mitosis-libvirtd-")
	conf := append([]string{fmt.Sprintf("unix_sock_dir = %q", d.Dir)}, o.Conf...)
	confFile := filepath.Join(d.Dir, "libvirtd.conf")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Chown(t, d.Dir)
	d.Chown(t, confFile)
	cacheHome := filepath.Join(d.Dir, "cache")
	if o.CacheHome != "" && (d.UID == os.Getuid() || traversable(o.CacheHome)) {
		cacheHome = o.CacheHome
		if err := os.MkdirAll(cacheHome, 0o755); err != nil {
			t.Fatal(err)
		}
		d.Chown(t, cacheHome)
	}

	args := []string{"-f", confFile}
	for _, l := range o.Conf {
		if strings.HasPrefix(l, "listen_tls") {
			args = append(args, "--listen")
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = d.Dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + d.Dir, "LANG=C",
		"XDG_RUNTIME_DIR=" + filepath.Join(d.Dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(d.Dir, "config"),
		"XDG_CACHE_HOME=" + cacheHome,
	}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.UID != os.Getuid() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(d.UID), Gid: uint32(d.GID)}
	}
	// What a session daemon leaves running when it exits: its guests and
	// the session virtlogd it spawned for their serial logs.
	d.run(t, cmd, func() []int {
		files, _ := filepath.Glob(filepath.Join(d.Dir, "run", "libvirt", "qemu", "run", "*.pid"))
		files = append(files, filepath.Join(d.Dir, "run", "libvirt", "virtlogd.pid"))
		var pids []int
		for _, f := range files {
			// Only a process of the daemon's user: never a reused PID.
			if pid := readPID(f); pid > 0 && d.UID != 0 && procUID(pid) == d.UID {
				pids = append(pids, pid)
			}
		}
		return pids
	})
	return d
}

// makeDir makes the daemon's directory. Not t.TempDir: its parent is
// mode 0700, which the guests' user cannot enter, and a unix socket's
// path must stay under 108 bytes.
func (d *Daemon) makeDir(t testing.TB, prefix string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d.Dir, d.Socket = dir, filepath.Join(dir, "libvirt-sock")
}

// run starts cmd (libvirtd, with its PID the command's), waits until the
// socket answers, and registers the stop: the PIDs left() returns then,
// and any other process started from the daemon's directory, are killed
// first (libvirtd leaves its guests running when it exits), then
// libvirtd, then once more what is left: a guest libvirtd was still
// starting or restoring when the test ended (a loaded machine, a test
// that failed mid-call) appears after the first look.
func (d *Daemon) run(t testing.TB, cmd *exec.Cmd, left func() []int) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	d.PID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func(last bool) {
		pids := left()
		for _, pid := range startedIn(d.Dir, d.PID) {
			// A system daemon's virtlogd goes after libvirtd (d.stops).
			if last || procComm(pid) != "virtlogd" {
				pids = append(pids, pid)
			}
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		waitGone(pids)
	}
	t.Cleanup(func() {
		defer kill(true) // libvirtd is gone: nothing starts a guest any more
		kill(false)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		for _, stop := range d.stops {
			stop()
		}
		if t.Failed() && testing.Verbose() {
			t.Logf("libvirtd log:\n%s", d.Log())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", d.Socket)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("libvirtd exited at start (%v):\n%s", err, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd did not open %s within 10 s:\n%s", d.Socket, d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Log is what the daemon printed.
func (d *Daemon) Log() string {
	if d.logFile != "" {
		b, _ := os.ReadFile(d.logFile)
		return string(b)
	}
	return d.log.String()
}

// Chown gives path to the guests' user.
func (d *Daemon) Chown(t testing.TB, path string) {
	t.Helper()
	if err := os.Chown(path, d.UID, d.GID); err != nil && os.Getuid() == 0 {
		t.Fatal(err)
	}
}

// Connect opens a raw go-libvirt connection to uri ("test:///default",
// "qemu:///session", "qemu:///system") on the daemon, closed in t.Cleanup.
func (d *Daemon) Connect(t testing.TB, uri string) *lv.Libvirt {
	t.Helper()
	l := lv.NewWithDialer(dialers.NewLocal(dialers.WithSocket(d.Socket)))
	if err := l.ConnectToURI(lv.ConnectURI(uri)); err != nil {
		t.Fatalf("connecting to %s on %s: %v", uri, d.Socket, err)
	}
	t.Cleanup(func() { _ = l.Disconnect() })
	return l
}

// URI is the URI a libvirt.Config names the daemon's driver by, e.g.
// URI("qemu", "/system").
func (d *Daemon) URI(driver, path string) string {
	return fmt.Sprintf("%s+unix://%s?socket=%s", driver, path, d.Socket)
}

// QEMUURI is the URI of the daemon's QEMU driver: qemu:///system or
// qemu:///session.
func (d *Daemon) QEMUURI() string {
	if d.System {
		return d.URI("qemu", "/system")
	}
	return d.URI("qemu", "/session")
}

func lookPath(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is missing (%v); %s", bin, err, InstallHint)
	}
	return p
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

func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// startedIn returns the processes, but libvirtd's (daemon), whose command
// line names dir (a directory of one daemon's, made by MkdirTemp): its
// guests name their pid file, monitor socket and disks there, so one whose
// pid file is missing (not written yet, or removed) is still found.
func startedIn(dir string, daemon int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == daemon || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(b, []byte{0}) {
			if bytes.HasPrefix(arg, []byte(dir+"/")) || bytes.Contains(arg, []byte("="+dir+"/")) || bytes.Contains(arg, []byte(","+dir+"/")) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitGone waits (up to 30 s: a loaded machine) until the killed
// processes are gone: a QEMU takes a moment to give its memory back.
func waitGone(pids []int) {
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			// Gone, or a zombie: "PID (COMM) Z ...".
			if err != nil || strings.Contains(string(b), ") Z ") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// procUID is the owner of a running process, -1 if there is none.
func procUID(pid int) int {
	var st syscall.Stat_t
	if syscall.Stat(fmt.Sprintf("/proc/%d", pid), &st) != nil {
		return -1
	}
	return int(st.Uid)
}
