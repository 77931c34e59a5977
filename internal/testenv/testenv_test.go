package testenv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// recorder is a testing.TB that records a failure instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestBinaryFailsAMissingComponentWithHowToInstallIt(t *testing.T) {
	r := &recorder{TB: t}
	testenv.Binary(r, "mitosis-no-such-program")
	if !strings.Contains(r.failed, "mitosis-no-such-program is not installed") || !strings.Contains(r.failed, "make deps") {
		t.Errorf("failure message %q", r.failed)
	}
}

func TestBinaryFindsAnInstalledOne(t *testing.T) {
	r := &recorder{TB: t}
	if p := testenv.Binary(r, "sh"); p == "" || r.failed != "" {
		t.Errorf("sh: %q, %q", p, r.failed)
	}
}
