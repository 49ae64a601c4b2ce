package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeProcess is a command for ServeExec, chosen by argv[0]:
//
//	cat     copies stdin to stdout, exits 0 at EOF
//	split   writes "out" to stdout and "err" to stderr, exits 7
//	sleep   waits for its context to end
//	resize  prints each resize as "ROWSxCOLS\n" and exits after the second
//	signal  exits 128+2 on the first signal, printing its name
//	true    exits 0 at once
type fakeProcess struct {
	done    chan struct{}
	code    int
	err     error
	resizes chan [2]int
	signals chan string
}

func (p *fakeProcess) Wait() (int, error) { <-p.done; return p.code, p.err }
func (p *fakeProcess) Resize(rows, cols int) error {
	p.resizes <- [2]int{rows, cols}
	return nil
}
func (p *fakeProcess) Signal(name string) error {
	p.signals <- name
	return nil
}

// execServer serves POST /v1/vms/dev/exec with fake processes; other VMs
// are not found. It records each request and whether a command's context
// was cancelled.
type execServer struct {
	sock      string
	mu        sync.Mutex
	reqs      []ExecRequest
	cancelled chan string
}

func newExecServer(t *testing.T) *execServer {
	t.Helper()
	s := &execServer{sock: filepath.Join(t.TempDir(), SocketName), cancelled: make(chan string, 10)}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vms/{name}/exec", s.handle)
	srv := &http.Server{Handler: mux, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(HTTPStatus(e.Code))
	json.NewEncoder(w).Encode(ErrorBody{Error: e})
}

func (s *execServer) handle(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("name"); name != "dev" {
		writeError(w, Errorf(CodeNotFound, "no vm named %s", name).WithHint("`banger vm list` shows your VMs"))
		return
	}
	var req ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Argv) == 0 {
		writeError(w, Errorf(CodeInvalid, "bad exec request: %v", err))
		return
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	conn, rw, err := UpgradeExec(w, r)
	if err != nil {
		writeError(w, AsError(err))
		return
	}
	ServeExec(r.Context(), conn, rw, func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (ExecProcess, error) {
		return s.start(ctx, req.Argv, stdin, stdout, stderr)
	})
}

func (s *execServer) start(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (ExecProcess, error) {
	p := &fakeProcess{done: make(chan struct{}), resizes: make(chan [2]int, 4), signals: make(chan string, 4)}
	run := func(f func()) { go func() { f(); close(p.done) }() }
	switch argv[0] {
	case "cat":
		run(func() { io.Copy(stdout, stdin) })
	case "split":
		run(func() { stdout.Write([]byte("out")); stderr.Write([]byte("err")); p.code = 7 })
	case "sleep":
		run(func() { <-ctx.Done(); s.cancelled <- argv[0]; p.code, p.err = -1, ctx.Err() })
	case "resize":
		run(func() {
			for range 2 {
				rc := <-p.resizes
				fmt.Fprintf(stdout, "%dx%d\n", rc[0], rc[1])
			}
		})
	case "signal":
		run(func() { fmt.Fprint(stdout, <-p.signals); p.code = 130 })
	case "true":
		run(func() {})
	default:
		return nil, Errorf(CodeInvalid, "%s: not found", argv[0])
	}
	return p, nil
}

func execIn(t *testing.T, c *Client, name string, req ExecRequest, stdin io.Reader) (int, string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code, err := c.Exec(ctx, name, req, ExecIO{Stdin: stdin, Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String(), err
}

func TestExecStdinRoundTripIsByteExact(t *testing.T) {
	s := newExecServer(t)
	c := NewClient(s.sock)
	data := make([]byte, 10<<20+17)
	rand.Read(data)
	code, out, _, err := execIn(t, c, "dev", ExecRequest{Argv: []string{"cat"}}, bytes.NewReader(data))
	if err != nil || code != 0 {
		t.Fatalf("cat: %d, %v", code, err)
	}
	if out != string(data) {
		t.Errorf("got %d bytes back, sent %d", len(out), len(data))
	}
}

func TestExecKeepsStdoutAndStderrApartWithExitCode(t *testing.T) {
	s := newExecServer(t)
	code, out, stderr, err := execIn(t, NewClient(s.sock), "dev", ExecRequest{Argv: []string{"split"}}, nil)
	if err != nil || code != 7 || out != "out" || stderr != "err" {
		t.Errorf("split: exit %d, stdout %q, stderr %q, %v; want 7, out, err", code, out, stderr, err)
	}
}

func TestExecRequestSurvivesTheWire(t *testing.T) {
	s := newExecServer(t)
	req := ExecRequest{
		Argv:    []string{"true", "a b", "\xff\xfe", "", "{\"base64\":\"x\"}"},
		Env:     []string{"K=\x80"},
		Workdir: "/tmp/\xc3",
		User:    "alice", TTY: true, Term: "vt100", Size: WindowSize{Rows: 40, Cols: 120},
	}
	if code, _, _, err := execIn(t, NewClient(s.sock), "dev", req, nil); err != nil || code != 0 {
		t.Fatalf("true: %d, %v", code, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if diff := cmp.Diff(req, s.reqs[0]); diff != "" {
		t.Errorf("request as received (-sent +got):\n%s", diff)
	}
}

func TestExecErrorBeforeUpgradeHasTheAPIShape(t *testing.T) {
	s := newExecServer(t)
	_, _, _, err := execIn(t, NewClient(s.sock), "nope", ExecRequest{Argv: []string{"true"}}, nil)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Message != "no vm named nope" || e.Hint == "" {
		t.Errorf("err = %#v, want not_found with a hint", err)
	}
}

func TestExecStartFailureIsAnErrorFrame(t *testing.T) {
	s := newExecServer(t)
	code, _, _, err := execIn(t, NewClient(s.sock), "dev", ExecRequest{Argv: []string{"missing"}}, nil)
	if code != -1 || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "missing: not found") {
		t.Errorf("got %d, %v; want -1 and the invalid error", code, err)
	}
}

func TestExecCancelEndsTheCommand(t *testing.T) {
	s := newExecServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewClient(s.sock).Exec(ctx, "dev", ExecRequest{Argv: []string{"sleep"}}, ExecIO{})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Errorf("err = %v, want interrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Exec did not return after cancel")
	}
	select {
	case <-s.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the command's context was not cancelled when the client went away")
	}
}

func TestExecResizeAndSignal(t *testing.T) {
	s := newExecServer(t)
	c := NewClient(s.sock)
	resize := make(chan WindowSize, 2)
	resize <- WindowSize{Rows: 10, Cols: 20}
	resize <- WindowSize{Rows: 30, Cols: 40}
	var out bytes.Buffer
	code, err := c.Exec(context.Background(), "dev", ExecRequest{Argv: []string{"resize"}, TTY: true}, ExecIO{Stdout: &out, Resize: resize})
	if err != nil || code != 0 || out.String() != "10x20\n30x40\n" {
		t.Errorf("resize: %d, %v, %q", code, err, out.String())
	}
	sig := make(chan string, 1)
	sig <- "INT"
	out.Reset()
	code, err = c.Exec(context.Background(), "dev", ExecRequest{Argv: []string{"signal"}}, ExecIO{Stdout: &out, Signal: sig})
	if err != nil || code != 130 || out.String() != "INT" {
		t.Errorf("signal: %d, %v, %q", code, err, out.String())
	}
}

func TestExecWithoutUpgradeHeadersIsInvalid(t *testing.T) {
	s := newExecServer(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.sock)
	}}}
	resp, err := hc.Post("http://bangerd/v1/vms/dev/exec", "application/json", strings.NewReader(`{"argv":["true"]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest || body.Error == nil || body.Error.Code != CodeInvalid {
		t.Errorf("plain POST: %s %+v", resp.Status, body.Error)
	}
}

func TestExecDialErrorSaysIsBangerdRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Exec(context.Background(), "dev", ExecRequest{Argv: []string{"true"}}, ExecIO{})
	if !IsDialError(err) {
		t.Errorf("err = %v, want a dial error", err)
	}
}

func TestFramesRoundTripAndLimits(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	big := bytes.Repeat([]byte{'x'}, MaxFramePayload+5)
	fw.WriteFrame(FrameStdout, []byte("hi"))
	fw.WriteFrame(FrameStdinClose, nil)
	fw.WriteFrame(FrameStderr, big)
	fw.WriteFrame(FrameExit, ExitPayload(-3))
	fr := NewFrameReader(bytes.NewReader(buf.Bytes()))
	var got []string
	for {
		ft, p, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%d", ft, len(p)))
		if ft == FrameExit {
			if code, _ := ParseExit(p); code != -3 {
				t.Errorf("exit code %d, want -3", code)
			}
		}
	}
	want := []string{"stdout:2", "stdin-close:0", fmt.Sprintf("stderr:%d", MaxFramePayload), "stderr:5", "exit:4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	// A frame cut short, and one over the limit, are errors.
	if _, _, err := NewFrameReader(bytes.NewReader(buf.Bytes()[:4])).ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short header: %v", err)
	}
	if _, _, err := NewFrameReader(bytes.NewReader(buf.Bytes()[:6])).ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short payload: %v", err)
	}
	huge := []byte{byte(FrameStdin), 0x7f, 0, 0, 0}
	if _, _, err := NewFrameReader(bytes.NewReader(huge)).ReadFrame(); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Errorf("huge frame: %v", err)
	}
	if ws, err := ParseResize(ResizePayload(WindowSize{Rows: 1, Cols: 65535})); err != nil || ws != (WindowSize{1, 65535}) {
		t.Errorf("resize round trip: %v %v", ws, err)
	}
}

// BenchmarkExecTrue measures one exec of a command that exits at once,
// over the unix socket: the API's share of `banger vm exec NAME -- true`.
func BenchmarkExecTrue(b *testing.B) {
	dir := b.TempDir()
	s := &execServer{sock: filepath.Join(dir, SocketName), cancelled: make(chan string, 10)}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vms/{name}/exec", s.handle)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()
	for b.Loop() {
		// A fresh client each time, as each `banger vm exec` is a new process.
		c := NewClient(s.sock)
		if code, err := c.Exec(ctx, "dev", ExecRequest{Argv: []string{"true"}}, ExecIO{}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
		c.CloseIdleConnections()
	}
}
