package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// The files of a clone in Config.ImageDir. Clone names are checked to be
// plain (see checkName), so these names cannot escape the directory.
//
//	NAME.save           the clone's memory image (the template's live snapshot,
//	                    rewritten); removed once the clone runs
//	NAME.TARGET.qcow2   the clone's overlay on the template's frozen disk TARGET
//	NAME.log, NAME.N.log  its file-backed serial ports, consoles and channels
//	NAME.TARGET.RAND.qcow2  NAME's next top when NAME is itself cloned
func (c *Client) savePath(name string) string { return filepath.Join(c.cfg.ImageDir, name+".save") }

func (c *Client) overlayPath(name, target string) string {
	return filepath.Join(c.cfg.ImageDir, name+"."+target+".qcow2")
}

// topPath is the template's new top for a snapshot: random, so that a
// snapshot retried after a crash never collides with the file the
// template may already run on.
func (c *Client) topPath(template, target string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(c.cfg.ImageDir, fmt.Sprintf("%s.%s.%x.qcow2", template, target, b))
}

// chardevPaths returns the function that maps the template's chardev
// files to the clone's, the same old path always to the same new one.
func (c *Client) chardevPaths(name string) func(string) string {
	seen := map[string]string{}
	return func(old string) string {
		if p, ok := seen[old]; ok {
			return p
		}
		p := filepath.Join(c.cfg.ImageDir, name+".log")
		if n := len(seen); n > 0 {
			p = filepath.Join(c.cfg.ImageDir, fmt.Sprintf("%s.%d.log", name, n+1))
		}
		seen[old] = p
		return p
	}
}

// createOverlay makes a qcow2 overlay on base with qemu-img, owned like
// the image directory (a session daemon's QEMU runs as the directory's
// owner; a system daemon relabels the images it opens anyway).
func (c *Client) createOverlay(ctx context.Context, overlay, base, format string) error {
	cmd := exec.CommandContext(ctx, c.cfg.qemuImg(), "create", "-q", "-f", "qcow2", "-F", format, "-b", base, overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create %s on %s: %w: %s", overlay, base, err, bytes.TrimSpace(out))
	}
	return c.ownLikeDir(overlay)
}

func (c *Client) ownLikeDir(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(c.cfg.ImageDir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("giving %s to the image directory's owner: %w", path, err)
	}
	return nil
}

// backingFile returns the backing file of a qcow2 image, "" for an image
// without one or one that is not qcow2 (raw). A relative backing path is
// relative to the image's directory.
func backingFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", nil // too short for qcow2: raw
		}
		return "", err
	}
	if string(h[:4]) != "QFI\xfb" {
		return "", nil
	}
	off := binary.BigEndian.Uint64(h[8:])
	size := binary.BigEndian.Uint32(h[16:])
	if off == 0 || size == 0 {
		return "", nil
	}
	if size > 1023 {
		return "", fmt.Errorf("%s: backing file name of %d bytes", path, size)
	}
	name := make([]byte, size)
	if _, err := f.ReadAt(name, int64(off)); err != nil {
		return "", fmt.Errorf("%s: backing file name: %w", path, err)
	}
	b := strings.TrimPrefix(string(name), "file:")
	if strings.HasPrefix(b, "json:") || strings.Contains(b, "://") {
		return "", nil // not a local file: nothing of ours
	}
	if !filepath.IsAbs(b) {
		b = filepath.Join(filepath.Dir(path), b)
	}
	return b, nil
}

// chain returns path and its backing files, as far as they can be read.
func chain(path string) []string {
	var out []string
	for p := path; p != "" && len(out) < 256; {
		out = append(out, p)
		next, err := backingFile(p)
		if err != nil {
			break
		}
		p = next
	}
	return out
}

// inDir reports whether path is directly in dir.
func inDir(dir, path string) bool {
	return filepath.Dir(filepath.Clean(path)) == filepath.Clean(dir)
}

// cloneIdentity is what a clone of req is made as: its name, a new UUID,
// the operation's metadata, and character devices of its own, which QEMU
// makes when the clone starts or is restored (left keeps them, for the
// cleanup of a clone that fails).
func (c *Client) cloneIdentity(req hypervisor.CloneRequest, method string, left *leftovers) identity {
	id := identity{
		name: req.Name, uuid: newUUID(),
		disks: map[string]string{},
		meta:  meta{Operation: req.Operation, Fence: req.Fence, Template: req.Template, Method: method},
	}
	paths := c.chardevPaths(req.Name)
	id.chardev = func(old string) string {
		p := paths(old)
		left.files = append(left.files, p)
		return p
	}
	return id
}
