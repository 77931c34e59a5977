package sim

import (
	"compress/gzip"
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
			name:  "a single row with a step",
			in:    "ts,v\n1000,7\n",
			opts:  TraceOptions{Step: time.Minute},
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

// traceErrorCase is a trace the reader refuses, and the start of the
// error it must give.
type traceErrorCase struct {
	name, in string
	opts     TraceOptions
	want     string
}

func checkTraceErrors(t *testing.T, cases []traceErrorCase) {
	t.Helper()
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

func TestReadTraceErrorsNameFileAndLine(t *testing.T) {
	cases := []traceErrorCase{
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
		{"bad bare number", "1 2\n3 x\n", TraceOptions{Step: time.Minute}, `t.csv:2: "x" is not a number`},
		{"too long", "t,v\n1000,1\n1060,1\n61060,1\n", TraceOptions{MaxPoints: 1000}, "t.csv:4: timestamp 1970-01-01T16:57:40Z is more than 1000 steps"},
	}
	checkTraceErrors(t, cases)
}

// Each case is input the reader once took silently: dropped, replaced,
// compressed or misnamed.
func TestReadTraceRefusesWhatItOnceTookSilently(t *testing.T) {
	const rows = "2026-01-01T00:01:00Z,1\n2026-01-01T00:02:00Z,2\n"
	cases := []traceErrorCase{
		// A first row that looks like data is data, not a header to drop.
		{"a first row with a bad date", "2026-13-01T00:00:00Z,5000\n" + rows, TraceOptions{}, `t.csv:1: "2026-13-01T00:00:00Z" is not a timestamp`},
		{"a first row with a bad value", "2026-01-01T00:00:00Z,abc\n" + rows, TraceOptions{}, `t.csv:1: "abc" is not a number`},
		{"a first row of three fields", "1000,1,2\n1060,1\n", TraceOptions{}, "t.csv:1: want 2 fields"},
		{"a first row after comments", "# load\n\n1000,x\n1060,1\n", TraceOptions{}, `t.csv:3: "x" is not a number`},
		// Demand the simulator cannot add up.
		{"a huge CSV value", "t,v\n1000,1\n1060,1e300\n", TraceOptions{}, "t.csv:3: value 1e+300 per 1m0s is 1.667e+298 requests per second, above the most the simulator takes (1e+12)"},
		{"a huge first value", "t,v\n1000,1e300\n1060,1\n", TraceOptions{}, "t.csv:2: value 1e+300 per 1m0s"},
		{"a huge bare number", "1\n1e300\n", TraceOptions{Step: time.Minute}, "t.csv:2: value 1e+300 per 1m0s"},
		{"a value made huge by the scale", "t,v\n1000,1\n1060,5000\n", TraceOptions{Scale: 1e300}, "t.csv:2: value 1 per 1m0s × scale 1e+300"},
		// Intervals the world cannot resolve.
		{"a step below the world's", "1 2 3\n", TraceOptions{Step: time.Nanosecond}, "t.csv: step 1ns is shorter than the world's step, 5s"},
		{"a step below a configured world step", "1 2 3\n", TraceOptions{Step: 30 * time.Second, MinStep: time.Minute}, "t.csv: step 30s is shorter than the world's step, 1m0s"},
		{"a step above a day", "1 2 3\n", TraceOptions{Step: 25 * time.Hour}, "t.csv: step 25h0m0s is longer than 24h0m0s"},
		{"timestamps a millisecond apart", "t,v\n2026-01-01T00:00:00.000Z,1\n2026-01-01T00:00:00.001Z,1\n", TraceOptions{}, "t.csv:3: the interval from the first row (line 2), 1ms is shorter than the world's step, 5s"},
		{"a single row without a step", "ts,v\n1000,7\n", TraceOptions{}, "t.csv:2: a single row: a trace needs two rows to know its interval, or a step (--step)"},
		// A gap of years is a stray timestamp, not points to fill.
		{"a gap of ten years", "2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,1\n2036-01-01T00:01:00Z,1\n", TraceOptions{}, "t.csv:3: timestamp 2036-01-01T00:01:00Z is 87648h0m0s after the previous one (2026-01-01T00:01:00Z): a gap longer than both 1000 intervals of 1m0s and 24h0m0s is not filled"},
		{"a gap of a thousand hourly intervals and more", "0,1\n3600,1\n3607200,1\n", TraceOptions{}, "t.csv:3: timestamp 1970-02-11T18:00:00Z is 1001h0m0s after"},
		// Other separators and garbage say what the line holds and what is wanted.
		{"semicolons", "time;value\n2026-01-01;5\n", TraceOptions{}, `t.csv:1: "time;value" is neither two comma-separated fields (timestamp,value) nor bare numbers separated by white space (with --step)`},
		{"tabs", "2026-01-01T00:00:00Z\t5\n", TraceOptions{Step: time.Minute}, `t.csv:1: "2026-01-01T00:00:00Z\t5" is neither two comma-separated fields`},
		{"binary garbage", "\x00\x01\xff\xfeGIF89a\n", TraceOptions{}, `t.csv:1: "\x00\x01\xff\xfeGIF89a" is neither`},
		{"a comma among bare numbers", "1 2\n3,4\n", TraceOptions{Step: time.Minute}, `t.csv:2: "3,4" has a comma, in a trace of bare numbers`},
	}
	checkTraceErrors(t, cases)
}

func TestReadTraceTakesAHeaderOnlyWhenItHoldsNoDigit(t *testing.T) {
	for _, in := range []string{"timestamp,value\n", "t,v\n", ",count\n", "\"time (UTC)\",\"requests\"\n", "Time,Requests per 5m\n"} {
		w, err := readString(in+"1000,1\n1060,2\n", TraceOptions{})
		if err != nil || len(w.Values) != 2 {
			t.Errorf("header %q: %v", in, err)
		}
	}
	// A gap of up to a day, or of up to 1000 intervals, is filled.
	w, err := readString("0,1\n3600,1\n3600000,2\n", TraceOptions{})
	if err != nil || w.Filled != 998 {
		t.Errorf("a gap of 999 hourly intervals: %v", err)
	}
	if _, err := readString("0,1\n5,1\n86405,2\n", TraceOptions{}); err != nil {
		t.Errorf("a gap of a day at 5 s: %v", err)
	}
	// The most the simulator takes is accepted.
	if _, err := readString("t,v\n0,1\n60,6e13\n", TraceOptions{}); err != nil {
		t.Errorf("1e12 requests per second: %v", err)
	}
}

func TestCheckWorkloadRefusesWhatTheWorldCannotSimulate(t *testing.T) {
	w := &Workload{Name: "w", Step: time.Minute, Values: []float64{60, 6000}}
	cases := []struct {
		name      string
		worldStep time.Duration
		scale     float64
		want      string
	}{
		{"fits", 5 * time.Second, 1, ""},
		{"an interval below the world's step", 2 * time.Minute, 1, "the workload's interval 1m0s is shorter than the world's step, 2m0s"},
		{"a scale that overflows", 5 * time.Second, 1e300, "the workload's peak demand, 100 requests per second × scale 1e+300, is 1e+302"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckWorkload(w, c.worldStep, c.scale)
			if (err == nil) != (c.want == "") || err != nil && !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
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

// worldCupPath is the WorldCup98 trace, gzipped (testdata/README.md
// says where it comes from and under which licence).
const worldCupPath = "testdata/worldcup98-requests-per-minute.csv.gz"

// openWorldCup reads the WorldCup98 trace.
func openWorldCup(tb testing.TB) *Workload {
	tb.Helper()
	f, err := os.Open(worldCupPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", worldCupPath, err)
	}
	w, err := ReadTrace(z, strings.TrimSuffix(filepath.Base(worldCupPath), ".gz"), TraceOptions{})
	if err != nil {
		tb.Fatal(err)
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
		if len(w.Values) == 0 || len(w.Values) > 10_000 || w.Step < 5*time.Second || w.Step > MaxStep {
			t.Fatalf("accepted a trace of %d points, step %s", len(w.Values), w.Step)
		}
		if err := CheckWorkload(w, 5*time.Second, 1); err != nil {
			t.Fatalf("accepted a trace that CheckWorkload refuses: %v", err)
		}
		for _, v := range w.Values {
			if !(v >= 0) || math.IsInf(v, 0) {
				t.Fatalf("accepted value %g", v)
			}
		}
	})
}
