package libvirttest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// The user and group a system daemon's QEMU runs as (Debian's).
const (
	QEMUUser  = "libvirt-qemu"
	QEMUGroup = "kvm"
)

// systemScript runs in a mount namespace of its own: libvirt's system
// paths are bind mounts of the daemon's directory there, so the daemon
// shares nothing with a host libvirtd or another test's, and the mounts
// vanish with its last process. virtlogd, which a system libvirtd does
// not start itself, runs in the same namespace. $1 is the daemon's
// directory, $2 the kept capabilities cache.
const systemScript = `set -e
d=$1
for m in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt; do
	mkdir -p "${m#*:}"
	mount --bind "$d/${m%%:*}" "${m#*:}"
done
mkdir -p /var/cache/libvirt
mount --bind "$2" /var/cache/libvirt
virtlogd -f "$d/virtlogd.conf" -p "$d/virtlogd.pid" >>"$d/virtlogd.out" 2>&1 &
exec libvirtd -f "$d/libvirtd.conf" -p "$d/libvirtd.pid"
`

// StartSystem starts a root libvirtd in system mode (qemu:///system) on
// a socket of its own, as a system daemon runs on a libvirt host: QEMU as
// libvirt-qemu:kvm (created with useradd/groupadd --system when
// missing), /dev/kvm, where it exists, made group kvm mode 0660 (else
// libvirt re-probes QEMU on every call), virtlogd running. Its
// /etc/libvirt, /run/libvirt, /var/lib/libvirt and /var/log/libvirt are
// directories under Dir, bind-mounted in a private mount namespace; its
// /var/cache/libvirt (QEMU's capabilities, ~2 s to probe) is kept under
// CacheDir. It, virtlogd and every QEMU it started are killed by PID in
// t.Cleanup. The test must run as root.
func StartSystem(t testing.TB, extraConf ...string) *Daemon {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatalf("a system libvirtd needs root; run the test as root (make test)")
	}
	for _, bin := range []string{"libvirtd", "virtlogd", "unshare", "mount", "useradd", "groupadd"} {
		lookPath(t, bin)
	}
	gid := ensureGroup(t, QEMUGroup)
	// Debian's libvirtd looks up its built-in default group, named like
	// the user, before it reads qemu.conf's.
	ensureGroup(t, QEMUUser)
	uid := ensureUser(t, QEMUUser, QEMUGroup)
	if _, err := os.Stat("/dev/kvm"); err == nil {
		if err := os.Chown("/dev/kvm", -1, gid); err != nil {
			t.Fatalf("chgrp %s /dev/kvm: %v", QEMUGroup, err)
		}
		if err := os.Chmod("/dev/kvm", 0o660); err != nil {
			t.Fatalf("chmod 0660 /dev/kvm: %v", err)
		}
	}

	d := &Daemon{UID: uid, GID: gid, System: true, log: &testenv.Buffer{}}
	d.makeDir(t, "mitosis-libvirtd-root-")
	d.Chown(t, d.Dir) // QEMU writes its serial logs next to the guest's files
	for _, sub := range []string{"etc", "run", "lib", "log"} {
		if err := os.Mkdir(filepath.Join(d.Dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(CacheDir(t), "libvirt-system-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"libvirtd.conf": strings.Join(append([]string{
			fmt.Sprintf("unix_sock_dir = %q", d.Dir),
			`unix_sock_rw_perms = "0700"`, `unix_sock_ro_perms = "0700"`, `auth_unix_rw = "none"`, `auth_unix_ro = "none"`,
			`log_outputs = "3:stderr"`,
		}, extraConf...), "\n") + "\n",
		"virtlogd.conf": `log_outputs = "3:stderr"` + "\n",
		"etc/qemu.conf": fmt.Sprintf("user = %q\ngroup = %q\n", QEMUUser, QEMUGroup),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d.Dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.Create(filepath.Join(d.Dir, "libvirtd.out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	d.logFile = out.Name()

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", systemScript, "sh", d.Dir, cache)
	cmd.Dir = d.Dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "LANG=C"}
	// A file, not a pipe: the daemon's children would hold a pipe open.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// virtlogd goes after libvirtd (a stopping libvirtd may still log).
	d.stops = append(d.stops, func() {
		if pid := readPID(filepath.Join(d.Dir, "virtlogd.pid")); pid > 0 && procComm(pid) == "virtlogd" {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone([]int{pid})
		}
	})
	d.run(t, cmd, func() []int {
		var pids []int
		files, _ := filepath.Glob(filepath.Join(d.Dir, "run", "qemu", "*.pid"))
		for _, f := range files {
			// Only a QEMU of this daemon's: never a reused PID.
			if pid := readPID(f); pid > 0 && strings.HasPrefix(procComm(pid), "qemu-system") {
				pids = append(pids, pid)
			}
		}
		return pids
	})
	sock := filepath.Join(d.Dir, "run", "virtlogd-sock")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.Dir, "virtlogd.out"))
			t.Fatalf("virtlogd did not open %s within 10 s:\n%s", sock, b)
		}
	}
	return d
}

func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ensureGroup returns the gid of a group, made a system group if missing.
func ensureGroup(t testing.TB, name string) int {
	t.Helper()
	if _, err := user.LookupGroup(name); err != nil {
		if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
			t.Logf("groupadd --system %s: %v: %s", name, err, out) // another test may have made it
		}
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatalf("group %s: %v", name, err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// ensureUser returns the uid of a user, made a system user of group if
// missing.
func ensureUser(t testing.TB, name, group string) int {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "--system", "--gid", group, "--no-create-home",
			"--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			t.Logf("useradd --system %s: %v: %s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}
