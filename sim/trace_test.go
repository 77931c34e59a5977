package sim

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readString(s string, opts TraceOptions) (*Workload, error) {
	return ReadTrace(strings.NewReader(s), "t.csv", opts)
}

func TestReadTraceFormats(t *testing.T) {
	cases := []struct {
		name, in string
		opts     TraceOptions
		start    time.Time
		step     time.Duration
		values   []float64
		filled   int
	}{
		{
			name:  "CSV with a header and date-times",
			in:    "period,count\n1998-04-30 21:30:00,2\n1998-04-30 21:31:00,11\n",
			start: time.Date(1998, 4, 30, 21, 30, 0, 0, time.UTC), step: time.Minute, values: []float64{2, 11},
		},
		{
			name:  "RFC 3339 with a zone, quoted fields and CRLF",
			in:    "\"t\",\"v\"\r\n\"2026-01-01T01:00:00+01:00\",\"1.5\"\r\n2026-01-01T00:00:30Z,2\r\n",
			start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: 30 * time.Second, values: []float64{1.5, 2},
		},
		{
			name:  "Unix seconds, no header, a gap filled with the previous value",
			in:    "# comment\n1000,5\n1060,6\n\n1240,9\n",
			start: time.Unix(1000, 0).UTC(), step: time.Minute, values: []float64{5, 6, 6, 6, 9}, filled: 2,
		},
		{
			name:  "jitter within half a step rounds to the grid",
			in:    "ts,v\n1000,1\n1060,2\n1119,3\n1181,4\n",
			start: time.Unix(1000, 0).UTC(), step: time.Minute, values: []float64{1, 2, 3, 4},
		},
		{
			name:  "a given step overrides the inferred one",
			in:    "ts,v\n1000,1\n1060,2\n",
			opts:  TraceOptions{Step: 30 * time.Second},
			start: time.Unix(1000, 0).UTC(), step: 30 * time.Second, values: []float64{1, 1, 2}, filled: 1,
		},
		{
			name:  "a single row takes a one-minute step",
			in:    "ts,v\n1000,7\n",
			start: time.Unix(1000, 0).UTC(), step: time.Minute, values: []float64{7},
		},
		{
			name:  "bare numbers with a step",
			in:    "1 2 3\n4\t5\n\n6e1\n",
			opts:  TraceOptions{Step: time.Minute},
			start: TraceEpoch, step: time.Minute, values: []float64{1, 2, 3, 4, 5, 60},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := readString(c.in, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !w.Start.Equal(c.start) || w.Step != c.step || w.Filled != c.filled || !equal(w.Values, c.values) {
				t.Errorf("got start %s step %s values %v filled %d", w.Start, w.Step, w.Values, w.Filled)
			}
		})
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadTraceErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, in string
		opts     TraceOptions
		want     string
	}{
		{"bad value", "t,v\n1000,1\n1060,abc\n", TraceOptions{}, `t.csv:3: "abc" is not a number`},
		{"bad timestamp", "t,v\n1000,1\nyesterday,2\n", TraceOptions{}, `t.csv:3: "yesterday" is not a timestamp`},
		{"too many fields", "t,v\n1000,1,2\n", TraceOptions{}, "t.csv:2: want 2 fields (timestamp,value), got 3"},
		{"negative", "t,v\n1000,1\n1060,-4\n", TraceOptions{}, "t.csv:3: value -4 is negative"},
		{"NaN", "t,v\n1000,NaN\n", TraceOptions{}, "t.csv:2: value is NaN"},
		{"infinite", "t,v\n1000,1e999\n", TraceOptions{}, "t.csv:2: \"1e999\" is out of range"},
		{"time going back", "t,v\n1000,1\n1060,1\n1000,1\n", TraceOptions{}, "t.csv:4: timestamp 1970-01-01T00:16:40Z is not after the previous one"},
		{"repeated time", "t,v\n1000,1\n1000,1\n", TraceOptions{}, "t.csv:3: timestamp 1970-01-01T00:16:40Z is not after the previous one"},
		{"closer than a step", "t,v\n1000,1\n1060,1\n1075,1\n", TraceOptions{}, "t.csv:4: timestamp 1970-01-01T00:17:55Z is less than a step (1m0s)"},
		{"header only", "t,v\n", TraceOptions{}, "t.csv: no data rows after the header"},
		{"empty", "\n# nothing\n", TraceOptions{}, "t.csv: no data"},
		{"bare numbers without a step", "1 2 3\n", TraceOptions{}, "t.csv:1: a trace of bare numbers needs a step"},
		{"bad bare number", "1 2\n3 x\n", TraceOptions{Step: time.Second}, `t.csv:2: "x" is not a number`},
		{"too long", "t,v\n1000,1\n1060,1\n99999999,1\n", TraceOptions{MaxPoints: 1000}, "t.csv:4: timestamp 1973-03-03T09:46:39Z is more than 1000 steps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readString(c.in, c.opts)
			var te *TraceError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TraceError", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want it to start with %q", err, c.want)
			}
		})
	}
}

func TestReadTraceRejectsOverlongLines(t *testing.T) {
	_, err := readString("t,v\n1000,1\n"+strings.Repeat("9", 2<<20)+"\n", TraceOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "t.csv:3: line longer than 1 MiB") {
		t.Errorf("got %v", err)
	}
}

// worldCupPath is the shared WorldCup98 trace (never copied into the
// repository).
const worldCupPath = "../../shared/data/worldcup98-requests-per-minute.csv"

// loadWorldCup reads the WorldCup98 trace, or returns nil when it is not
// there; under CI a missing trace fails the test.
func loadWorldCup(tb testing.TB) *Workload {
	tb.Helper()
	f, err := os.Open(worldCupPath)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("the WorldCup98 trace is needed under CI: %v", err)
		}
		return nil
	}
	defer f.Close()
	w, err := ReadTrace(f, filepath.Base(worldCupPath), TraceOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// openWorldCup is loadWorldCup for tests that cannot do without it.
func openWorldCup(tb testing.TB) *Workload {
	tb.Helper()
	w := loadWorldCup(tb)
	if w == nil {
		tb.Skipf("the WorldCup98 trace is not at %s", worldCupPath)
	}
	return w
}

func TestReadTraceWorldCup(t *testing.T) {
	w := openWorldCup(t)
	if w.Step != time.Minute || !w.Start.Equal(time.Date(1998, 4, 30, 21, 30, 0, 0, time.UTC)) {
		t.Errorf("start %s step %s", w.Start, w.Step)
	}
	// 125,300 rows over 125,310 minutes: the 10 missing are filled.
	if len(w.Values) != 125_310 || w.Filled != 10 {
		t.Errorf("%d points, %d filled", len(w.Values), w.Filled)
	}
	if peak := w.PeakRPS() * 60; peak != 229_426 {
		t.Errorf("peak %g/min, want 229,426", peak)
	}
}

func FuzzReadTrace(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzReadTrace.
	f.Fuzz(func(t *testing.T, data []byte, stepSeconds uint16) {
		w, err := ReadTrace(strings.NewReader(string(data)), "fuzz", TraceOptions{
			Step: time.Duration(stepSeconds) * time.Second, MaxPoints: 10_000,
		})
		if err != nil {
			var te *TraceError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TraceError", err)
			}
			return
		}
		if len(w.Values) == 0 || len(w.Values) > 10_000 || w.Step <= 0 {
			t.Fatalf("accepted a trace of %d points, step %s", len(w.Values), w.Step)
		}
		for _, v := range w.Values {
			if !(v >= 0) || math.IsInf(v, 0) {
				t.Fatalf("accepted value %g", v)
			}
		}
	})
}
