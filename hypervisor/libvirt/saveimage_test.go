package libvirt

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The layout libvirt 9.0 wrote for a live snapshot of the test guest on
// these machines: testdata/save-template.xml and save-cookie.xml are that
// image's XML and cookie, and data_len was their lengths (with their
// NULs) plus 64 KiB of zeros.
const realPadding = 65536

// saveImageBytes builds a save image the way libvirt lays it out:
// header, XML, NUL, cookie, NUL, padding, then a stand-in for QEMU's
// migration stream.
func saveImageBytes(t *testing.T, version uint32, xml, cookie string, padding int, stream []byte) []byte {
	t.Helper()
	var h [saveHeaderLen]byte
	copy(h[:], saveMagic)
	data := xml + "\x00"
	if cookie != "" {
		binary.LittleEndian.PutUint32(h[32:], uint32(len(data)))
		data += cookie + "\x00"
	}
	data += strings.Repeat("\x00", padding)
	binary.LittleEndian.PutUint32(h[16:], version)
	binary.LittleEndian.PutUint32(h[20:], uint32(len(data)))
	return append(append(h[:], data...), stream...)
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeImage(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.save")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSaveImageRealLayout(t *testing.T) {
	xml, cookie := readTestdata(t, "save-template.xml"), readTestdata(t, "save-cookie.xml")
	b := saveImageBytes(t, 2, xml, cookie, realPadding, nil)
	// What the image on disk said: data_len 67414, cookieOffset 1659.
	if got := binary.LittleEndian.Uint32(b[20:]); got != 67414 {
		t.Fatalf("fixture data_len = %d, want 67414 as libvirt wrote it", got)
	}
	if got := binary.LittleEndian.Uint32(b[32:]); got != 1659 {
		t.Fatalf("fixture cookieOffset = %d, want 1659 as libvirt wrote it", got)
	}
	s, err := readSaveImage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if s.xml != xml || string(s.cookie) != cookie {
		t.Errorf("read XML/cookie differ from what was written")
	}
}

func TestRewriteSaveImageKeepsLayout(t *testing.T) {
	xml, cookie := readTestdata(t, "save-template.xml"), readTestdata(t, "save-cookie.xml")
	stream := []byte("QEVM\x00\x00\x00\x03 the migration stream, which must not move")
	orig := saveImageBytes(t, 2, xml, cookie, realPadding, stream)
	p := writeImage(t, orig)

	grown := strings.Replace(xml, "<name>tmpl</name>", "<name>mitosis-a-much-longer-clone-name</name>", 1) +
		strings.Repeat("<!-- grow -->", 100)
	if err := rewriteSaveImage(p, func(x string) (string, error) {
		if x != xml {
			t.Errorf("edit got another XML than the image's")
		}
		return grown, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(orig) {
		t.Fatalf("image is %d bytes, was %d", len(got), len(orig))
	}
	if !bytes.Equal(got[:20], orig[:20]) || !bytes.Equal(got[20:24], orig[20:24]) {
		t.Errorf("magic, version or data_len changed")
	}
	if binary.LittleEndian.Uint32(got[24:]) != 1 {
		t.Errorf("was_running not set")
	}
	if off := binary.LittleEndian.Uint32(got[32:]); off != uint32(len(grown)+1) {
		t.Errorf("cookieOffset = %d, want %d (right after the new XML)", off, len(grown)+1)
	}
	if !bytes.HasSuffix(got, stream) || !bytes.Equal(got[len(got)-len(stream):], orig[len(orig)-len(stream):]) {
		t.Errorf("the migration stream moved or changed")
	}
	s, err := readSaveImage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if s.xml != grown {
		t.Errorf("XML read back differs from the one written")
	}
	if string(s.cookie) != cookie {
		t.Errorf("cookie = %q, want it unchanged", s.cookie)
	}
	// Everything between the cookie's NUL and the stream is zero.
	data := got[saveHeaderLen : len(got)-len(stream)]
	tail := data[len(grown)+1+len(cookie)+1:]
	if bytes.Count(tail, []byte{0}) != len(tail) {
		t.Errorf("padding is not zero")
	}
}

func TestRewriteSaveImageTooLong(t *testing.T) {
	xml, cookie := readTestdata(t, "save-template.xml"), readTestdata(t, "save-cookie.xml")
	orig := saveImageBytes(t, 2, xml, cookie, 5, []byte("QEVM"))

	t.Run("fits once its indentation is dropped", func(t *testing.T) {
		p := writeImage(t, orig)
		longer := strings.Replace(xml, "tmpl", "tmpl-0123456789", 1)
		if err := rewriteSaveImage(p, func(string) (string, error) { return longer, nil }); err != nil {
			t.Fatal(err)
		}
		got, _ := saveImageXML(p)
		want, _ := compactXML(longer)
		if got != want || strings.Contains(got, "\n  <") {
			t.Errorf("XML written is not the compacted one:\n%s", got)
		}
	})
	t.Run("does not fit: clear error, image unchanged", func(t *testing.T) {
		p := writeImage(t, orig)
		huge := strings.Replace(xml, "</domain>", "<description>"+strings.Repeat("x", 4096)+"</description></domain>", 1)
		err := rewriteSaveImage(p, func(string) (string, error) { return huge, nil })
		if err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Fatalf("err = %v, want a 'does not fit' error", err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, orig) {
			t.Errorf("a failed rewrite changed the image")
		}
	})
}

func TestSaveImageVersion1WithoutCookie(t *testing.T) {
	xml := readTestdata(t, "save-template.xml")
	p := writeImage(t, saveImageBytes(t, 1, xml, "", 1024, []byte("QEVM")))
	if err := rewriteSaveImage(p, func(x string) (string, error) { return x + "<!-- v1 -->", nil }); err != nil {
		t.Fatal(err)
	}
	got, err := saveImageXML(p)
	if err != nil || got != xml+"<!-- v1 -->" {
		t.Fatalf("XML = %q, %v", got, err)
	}
	b, _ := os.ReadFile(p)
	if binary.LittleEndian.Uint32(b[32:]) != 0 {
		t.Errorf("version 1 image got a cookie offset")
	}
}

func TestSaveImageRefusesWhatItDoesNotUnderstand(t *testing.T) {
	xml := "<domain><name>a</name><uuid>u</uuid></domain>"
	good := saveImageBytes(t, 2, xml, "<cookie/>", 64, nil)
	cases := map[string]struct {
		mutate func([]byte) []byte
		want   string
	}{
		"not a save image":    {func(b []byte) []byte { copy(b, "QFI\xfb"); return b }, "not a libvirt QEMU save image"},
		"still being written": {func(b []byte) []byte { copy(b, savePartialMagic); return b }, "incomplete"},
		"unknown version":     {func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 3); return b }, "version 3"},
		"truncated":           {func(b []byte) []byte { return b[:saveHeaderLen+10] }, "data block"},
		"short header":        {func(b []byte) []byte { return b[:40] }, "header"},
		"cookie outside":      {func(b []byte) []byte { binary.LittleEndian.PutUint32(b[32:], 1<<20); return b }, "cookie offset"},
		"no NUL after XML": {func([]byte) []byte {
			b := saveImageBytes(t, 1, "xxxxxxxxxx", "", 0, nil)
			binary.LittleEndian.PutUint32(b[20:], 10)
			return b[:saveHeaderLen+10]
		}, "NUL"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := c.mutate(bytes.Clone(good))
			_, err := readSaveImage(bytes.NewReader(b))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}
