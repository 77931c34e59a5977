package libvirt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// A QEMU save image, as libvirt's qemu driver writes it (a `virsh save`,
// a managed save, or the memory file of an external snapshot):
//
//	offset 0   magic "LibvirtQemudSave" (16 bytes; "LibvirtQemudPart" while being written)
//	       16  version      uint32, little endian (1 or 2)
//	       20  data_len     uint32: length of the data block that follows the header
//	       24  was_running  uint32
//	       28  compressed   uint32 (of the memory stream only)
//	       32  cookieOffset uint32 (version 2): where the cookie starts in the data block
//	       36  unused       14 × uint32
//	       92  data block: domain XML, NUL, [cookie XML, NUL], zero padding
//	92+data_len  QEMU's migration stream ("QEVM…")
//
// libvirt refuses to restore an image under another name or uuid (its
// ABI check compares uuids), so a clone's identity is written into the
// image itself. The data block keeps its length, so the migration stream
// does not move; the cookie moves right behind the new XML.
const (
	saveMagic        = "LibvirtQemudSave"
	savePartialMagic = "LibvirtQemudPart"
	saveHeaderLen    = 92
	// maxSaveData bounds data_len: libvirt pads the block to ~64 KiB; a
	// header claiming more than this is not one we understand.
	maxSaveData = 16 << 20
)

// saveImage is the header and data block of a save image.
type saveImage struct {
	header [saveHeaderLen]byte
	xml    string // without its NUL
	cookie []byte // without its NUL; nil when there is none
}

func (s *saveImage) version() uint32      { return binary.LittleEndian.Uint32(s.header[16:]) }
func (s *saveImage) dataLen() uint32      { return binary.LittleEndian.Uint32(s.header[20:]) }
func (s *saveImage) cookieOffset() uint32 { return binary.LittleEndian.Uint32(s.header[32:]) }

// readSaveImage reads and checks the header and data block of a save image.
func readSaveImage(r io.ReaderAt) (*saveImage, error) {
	s := &saveImage{}
	if _, err := r.ReadAt(s.header[:], 0); err != nil {
		return nil, fmt.Errorf("save image header: %w", err)
	}
	switch string(s.header[:16]) {
	case saveMagic:
	case savePartialMagic:
		return nil, errors.New("save image is incomplete (libvirt had not finished writing it)")
	default:
		return nil, fmt.Errorf("not a libvirt QEMU save image (magic %q)", bytes.TrimRight(s.header[:16], "\x00"))
	}
	if v := s.version(); v != 1 && v != 2 {
		return nil, fmt.Errorf("save image version %d: only 1 and 2 are understood", v)
	}
	n := s.dataLen()
	if n == 0 || n > maxSaveData {
		return nil, fmt.Errorf("save image data block of %d bytes: not understood", n)
	}
	data := make([]byte, n)
	if _, err := r.ReadAt(data, saveHeaderLen); err != nil {
		return nil, fmt.Errorf("save image data block: %w", err)
	}
	xmlEnd := bytes.IndexByte(data, 0)
	if xmlEnd < 0 {
		return nil, errors.New("save image: domain XML is not NUL-terminated")
	}
	s.xml = string(data[:xmlEnd])
	if off := s.cookieOffset(); s.version() >= 2 && off != 0 {
		if off <= uint32(xmlEnd) || off >= n {
			return nil, fmt.Errorf("save image: cookie offset %d outside the data block (XML ends at %d, block is %d bytes)", off, xmlEnd, n)
		}
		c := data[off:]
		end := bytes.IndexByte(c, 0)
		if end < 0 {
			return nil, errors.New("save image: cookie is not NUL-terminated")
		}
		s.cookie = bytes.Clone(c[:end])
	}
	return s, nil
}

// setXML replaces the domain XML, keeping the data block's length. If the
// XML does not fit, its indentation is dropped; if it still does not fit,
// setXML fails and leaves s as it was.
func (s *saveImage) setXML(xml string) error {
	room := int(s.dataLen())
	need := func(x string) int {
		n := len(x) + 1
		if s.cookie != nil {
			n += len(s.cookie) + 1
		}
		return n
	}
	if need(xml) > room {
		compact, err := compactXML(xml)
		if err != nil {
			return err
		}
		if need(compact) > room {
			return fmt.Errorf("the clone's domain XML (%d bytes, %d without indentation) does not fit the save image's data block of %d bytes", need(xml), need(compact), room)
		}
		xml = compact
	}
	s.xml = xml
	if s.cookie != nil {
		binary.LittleEndian.PutUint32(s.header[32:], uint32(len(xml)+1))
	}
	return nil
}

// data returns the data block: XML, NUL, cookie, NUL, zero padding.
func (s *saveImage) data() []byte {
	b := make([]byte, s.dataLen())
	n := copy(b, s.xml) + 1
	if s.cookie != nil {
		copy(b[n:], s.cookie)
	}
	return b
}

// rewriteSaveImage replaces the domain XML of the save image at path in
// place with edit's result and marks the image as running.
func rewriteSaveImage(path string, edit func(xml string) (string, error)) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := readSaveImage(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	xml, err := edit(s.xml)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := s.setXML(xml); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	binary.LittleEndian.PutUint32(s.header[24:], 1) // was_running
	buf := append(s.header[:], s.data()...)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("%s: writing: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// saveImageXML returns the domain XML of the save image at path.
func saveImageXML(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s, err := readSaveImage(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s.xml, nil
}
