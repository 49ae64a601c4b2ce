package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
	"banger/internal/testutil"
)

// fuzzMethods are the methods FuzzAPI picks from by index.
var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch}

// fuzzSkipped are path words whose routes FuzzAPI leaves alone: they stream
// until the client leaves (events, logs, exec), end the daemon (shutdown) or
// listen on host ports (forwards, covered by forward.FuzzParseSpec).
var fuzzSkipped = []string{"events", "logs", "exec", "shutdown", "forward"}

// FuzzAPI sends arbitrary methods, paths and bodies to the daemon's real
// handler (with fake host layers) and checks what any client may rely on:
// no panic, no 5xx for a request the daemon could judge (only a 4xx says
// "your request was wrong"), and every error in the API's one shape, as a
// plain response or as the last line of a progress stream.
func FuzzAPI(f *testing.F) {
	for _, s := range []struct {
		method int
		path   string
		body   string
	}{
		{0, "/v1/status", ""},
		{0, "/v1/vms", ""},
		{0, "/v1/vms/dev", ""},
		{0, "/v1/vms?all=1", ""},
		{1, "/v1/vms", `{"name":"dev","image":"base","cpus":2,"memory_mib":512,"disk_bytes":1073741824,"no_start":true}`},
		{1, "/v1/vms", `{"name":"dev","image":"base","cpus":99999999,"memory_mib":-1}`},
		{1, "/v1/vms", `{"name":"Dev!","image":"../../etc"}`},
		{1, "/v1/vms", `{"name":"x","root_bytes":-5,"disk_bytes":9223372036854775807}`},
		{1, "/v1/vms", `{"name":"x","hidden":true}`},
		{1, "/v1/vms", `{"name":1}`},
		{1, "/v1/vms", `{"name":"a"}{"name":"b"}`},
		{1, "/v1/vms", `[`},
		{1, "/v1/vms", "\x00\xff"},
		{1, "/v1/vms/dev/start", ""},
		{1, "/v1/vms/dev/stop", `{"timeout_seconds":-1}`},
		{1, "/v1/vms/dev/stop", `{"timeout_seconds":9223372036854775807}`},
		{1, "/v1/vms/dev/kill", ""},
		{1, "/v1/vms/dev/restart?wait_ssh=1", ""},
		{1, "/v1/vms/dev/resize", `{"disk_bytes":17179869184,"root_bytes":-1}`},
		{1, "/v1/vms/dev/resize", `{"disk_bytes":1}`},
		{1, "/v1/vms/dev/remove", `{"force":true}`},
		{1, "/v1/vms/dev/wait", `{"timeout_seconds":1}`},
		{1, "/v1/vms/..%2F..%2Fetc/start", ""},
		{1, "/v1/vms/%00/start", ""},
		{0, "/v1/images", ""},
		{0, "/v1/images/base", ""},
		{2, "/v1/images/base", ""},
		{2, "/v1/images/..", ""},
		{1, "/v1/images/bootstrap", `{"name":"deb","size_bytes":1,"packages":["-oAPT::x=1"],"mirror":"file:///etc"}`},
		{1, "/v1/images/build", `{"name":"b","base":"base","packages_file":"curl\n../x.deb\n"}`},
		{1, "/v1/images/build", `{"name":"b","base":"base","copies":[{"src":"relative","dest":"/"}]}`},
		{1, "/v1/images/commit", `{"vm":"dev","name":"base"}`},
		{1, "/v1/dns/setup", `{"remove":true}`},
		{1, "/v1/images/prune", `{"dry_run":true,"log_days":30}`},
		{1, "/v1/images/prune", `{"log_days":-9223372036854775808}`},
		{0, "/v1/doctor", ""},
		{3, "/v1/vms", "{}"},
		{0, "/v2/vms", ""},
		{0, "//v1//vms/./dev", ""},
	} {
		f.Add(s.method, s.path, []byte(s.body))
	}
	inst := daemontest.Start(f, nil)
	inst.AddImage(f, "base")
	h := inst.Daemon.Handler()
	f.Fuzz(func(t *testing.T, method int, path string, body []byte) {
		if method < 0 {
			method = -method
		}
		m := fuzzMethods[method%len(fuzzMethods)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := testutil.FuzzRequest(t, ctx, m, path, body, fuzzSkipped...)
		before := inventory(t, h)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		resp := rec.Result()
		checkResponse(t, m, path, body, resp)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 499 {
			// A refused request (invalid, not found, conflict, …) changes
			// nothing: the API's promise behind those codes.
			if after := inventory(t, h); after != before {
				t.Fatalf("%s %s %q was refused with %d but changed the daemon's state:\nbefore %s\nafter  %s", m, path, body, resp.StatusCode, before, after)
			}
		}
	})
}

// inventory renders the VMs (name and state) and images the daemon lists.
func inventory(t *testing.T, h http.Handler) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"/v1/vms?all=1", "/v1/images"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var items []struct{ Name, State string }
		if err := json.Unmarshal(rec.Body.Bytes(), &items); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		for _, it := range items {
			b.WriteString(it.Name + ":" + it.State + " ")
		}
		b.WriteString("| ")
	}
	return b.String()
}

// checkResponse checks one answer of the API against its contract.
func checkResponse(t *testing.T, method, path string, body []byte, resp *http.Response) {
	t.Helper()
	what := method + " " + path + " " + string(body)
	raw := new(bytes.Buffer)
	_, _ = raw.ReadFrom(resp.Body)
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// The mux cleans paths ("//v1" → "/v1") by redirecting.
		if resp.Header.Get("Location") == "" {
			t.Fatalf("%s: redirect %d without a location", what, resp.StatusCode)
		}
		return
	case resp.StatusCode >= 500:
		t.Fatalf("%s: status %d for a request the daemon could judge; body %s", what, resp.StatusCode, raw)
	case resp.StatusCode >= 400:
		e := decodeError(t, what, raw.Bytes())
		if got := api.HTTPStatus(e.Code); got != resp.StatusCode {
			t.Fatalf("%s: status %d but error code %q maps to %d", what, resp.StatusCode, e.Code, got)
		}
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson"):
		sc := bufio.NewScanner(raw)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var last api.StreamLine
		lines := 0
		for sc.Scan() {
			last = api.StreamLine{}
			if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
				t.Fatalf("%s: stream line %q is not a StreamLine: %v", what, sc.Text(), err)
			}
			lines++
		}
		if lines == 0 || (!last.Done && last.Error == nil) {
			t.Fatalf("%s: stream ended without a result or an error: %s", what, raw)
		}
		if e := last.Error; e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("%s: stream error without code or message: %+v", what, e)
			}
			if e.Code == api.CodeInternal {
				t.Fatalf("%s: internal error in a stream: %+v", what, e)
			}
		}
	default:
		if !json.Valid(raw.Bytes()) {
			t.Fatalf("%s: status %d with a body that is not JSON: %q", what, resp.StatusCode, raw)
		}
	}
}

// decodeError reads the one error shape strictly.
func decodeError(t *testing.T, what string, raw []byte) *api.Error {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var eb api.ErrorBody
	if err := dec.Decode(&eb); err != nil || eb.Error == nil {
		t.Fatalf("%s: error body %q is not {\"error\":{...}}: %v", what, raw, err)
	}
	if eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("%s: error without code or message: %s", what, raw)
	}
	return eb.Error
}
