package prometheus_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProm speaks the part of Prometheus's HTTP API the source uses:
// /api/v1/query, instant, with timestamp(q) answering each series' sample
// time, evaluated at the current time.
type fakeProm struct {
	mu      sync.Mutex
	vectors map[string][]fakeSeries
	scalars map[string]float64
	// fail answers a query with an API error of this HTTP status.
	fail  map[string]int
	delay time.Duration
	// check inspects each request (credentials); false answers 401.
	check    func(*http.Request) bool
	requests int
}

type fakeSeries struct {
	labels map[string]string
	value  float64
	age    time.Duration
}

func newFake() *fakeProm {
	return &fakeProm{vectors: map[string][]fakeSeries{}, scalars: map[string]float64{}, fail: map[string]int{}}
}

func (f *fakeProm) set(q string, ss ...fakeSeries) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vectors[q] = ss
}

func (f *fakeProm) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func apiError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": typ, "error": msg})
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	delay, check := f.delay, f.check
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if check != nil && !check(r) {
		apiError(w, http.StatusUnauthorized, "", "unauthorized")
		return
	}
	if err := r.ParseForm(); err != nil {
		apiError(w, 400, "bad_data", err.Error())
		return
	}
	q := r.Form.Get("query")
	stamp := strings.HasPrefix(q, "timestamp(") && strings.HasSuffix(q, "\n)")
	if stamp {
		q = strings.TrimSuffix(strings.TrimPrefix(q, "timestamp("), "\n)")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if code, ok := f.fail[q]; ok {
		apiError(w, code, map[int]string{400: "bad_data", 422: "execution", 503: "unavailable"}[code], "parse error at char 3: boom")
		return
	}
	now := time.Now()
	evalTS := float64(now.UnixMilli()) / 1000
	var data map[string]any
	if v, ok := f.scalars[q]; ok {
		if stamp {
			apiError(w, 400, "bad_data", `expected type instant vector in call to function "timestamp", got scalar`)
			return
		}
		data = map[string]any{"resultType": "scalar", "result": []any{evalTS, num(v)}}
	} else {
		res := []any{}
		for _, s := range f.vectors[q] {
			labels := map[string]string{}
			for k, v := range s.labels {
				if !(stamp && k == "__name__") {
					labels[k] = v
				}
			}
			val := num(s.value)
			if stamp {
				val = num(float64(now.Add(-s.age).UnixMilli()) / 1000)
			}
			res = append(res, map[string]any{"metric": labels, "value": []any{evalTS, val}})
		}
		data = map[string]any{"resultType": "vector", "result": res}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func node(label, value string, v float64, age time.Duration) fakeSeries {
	return fakeSeries{labels: map[string]string{"__name__": "m", "job": "app", label: value}, value: v, age: age}
}

func one(v float64, age time.Duration) fakeSeries {
	return fakeSeries{labels: map[string]string{}, value: v, age: age}
}

func listenAgain(addr string) (net.Listener, error) {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l, nil
		}
	}
	return nil, err
}
