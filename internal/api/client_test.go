package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// countingListener counts the connections a test server accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serveFake serves a few daemon routes on a unix socket in dir and returns
// the socket and the listener counting its connections.
func serveFake(t *testing.T, dir string) (string, *countingListener) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, SocketName)
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: ul}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Status{PID: 42, Socket: sock})
	})
	// A long list is sent chunked, as the TUI's polls of many VMs are.
	vms := make([]VM, 500)
	for i := range vms {
		vms[i] = VM{Name: fmt.Sprintf("vm%d", i), State: "running"}
	}
	mux.HandleFunc("GET /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(vms)
	})
	mux.HandleFunc("POST /v1/vms/{name}/kill", func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		_ = enc.Encode(StreamLine{Progress: &Progress{Step: "kill"}})
		w.(http.Flusher).Flush()
		_ = enc.Encode(StreamLine{VM: &VM{Name: r.PathValue("name"), State: "stopped"}, Done: true})
	})
	mux.HandleFunc("GET /v1/vms/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(ErrorBody{Error: &Error{Code: CodeNotFound, Message: "no vm named " + r.PathValue("name")}})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, l
}

func TestClientReusesOneConnection(t *testing.T) {
	sock, l := serveFake(t, t.TempDir())
	c := NewClient(sock)
	t.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("status %d: %v", i, err)
		}
		if st.PID != 42 {
			t.Fatalf("status %d: pid %d, want 42", i, st.PID)
		}
		if vms, err := c.VMs(ctx, false); err != nil || len(vms) != 500 {
			t.Fatalf("vms %d: %d vms, %v", i, len(vms), err)
		}
		if v, err := c.KillVM(ctx, "dev"); err != nil || v.State != "stopped" {
			t.Fatalf("kill %d: %+v, %v", i, v, err)
		}
		if _, err := c.VM(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("vm ghost %d: %v, want not found", i, err)
		}
	}
	if n := l.accepted.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d connections, want 1", n)
	}
}

func TestZeroClientReusesConnectionsConcurrently(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	sock, l := serveFake(t, filepath.Join(run, "banger"))
	var c Client
	t.Cleanup(c.CloseIdleConnections)
	if c.socket() != sock {
		t.Fatalf("zero client socket = %s, want %s", c.socket(), sock)
	}
	const workers, rounds = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if _, err := c.Status(context.Background()); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A dial raced by a connection coming back may add a spare one, but
	// never one per request.
	if n := l.accepted.Load(); n > 2*workers {
		t.Errorf("%d concurrent workers opened %d connections for %d requests, want at most %d", workers, n, workers*rounds, 2*workers)
	}
}

func TestClientNamesTheSocketWhenNoDaemonAnswers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), SocketName)
	_, err := NewClient(sock).Status(context.Background())
	if !IsDialError(err) {
		t.Fatalf("status without a daemon: %v, want a dial error", err)
	}
	var d *DialError
	if !errors.As(err, &d) || d.Socket != sock {
		t.Errorf("dial error %v does not name %s", err, sock)
	}
}

// brokenOnce serves a route whose first answer is a connection closed
// mid-request, as a daemon killed while answering leaves it.
type brokenOnce struct {
	calls atomic.Int64
	then  http.HandlerFunc
}

func (b *brokenOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.calls.Add(1) == 1 {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			if uc, ok := conn.(*net.UnixConn); ok {
				_ = uc.CloseWrite()
			}
			conn.Close()
		}
		return
	}
	b.then(w, r)
}

// A request that changes nothing is sent again, once, after Reconnect
// when the daemon's connection breaks under it; one that changes
// something never is: its error says what broke.
func TestClientRetriesOnlyRequestsThatChangeNothing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), SocketName)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	status := &brokenOnce{then: func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Status{PID: 7})
	}}
	kill := &brokenOnce{then: func(w http.ResponseWriter, r *http.Request) {}}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/status", status)
	mux.Handle("POST /v1/vms/{name}/kill", kill)
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	var reconnects atomic.Int64
	c := NewClient(sock)
	c.Reconnect = func(ctx context.Context) error {
		reconnects.Add(1)
		return nil
	}
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.PID != 7 {
		t.Fatalf("status across a broken connection = %+v, %v", st, err)
	}
	if n := status.calls.Load(); n != 2 {
		t.Errorf("GET /status sent %d times, want 2", n)
	}
	if n := reconnects.Load(); n != 1 {
		t.Errorf("reconnected %d times, want 1", n)
	}
	if _, err := c.KillVM(ctx, "dev"); err == nil || !strings.Contains(err.Error(), "talking to bangerd (POST /vms/dev/kill)") || !strings.Contains(err.Error(), "whether it acted is unknown") {
		t.Errorf("kill across a broken connection: %v", err)
	}
	if n := kill.calls.Load(); n != 1 {
		t.Errorf("POST kill sent %d times, want 1", n)
	}
	if n := reconnects.Load(); n != 1 {
		t.Errorf("reconnected %d times after the POST, want still 1", n)
	}
	// A probe made WithoutReconnect sees the broken connection itself.
	status.calls.Store(0)
	if _, err := c.Status(WithoutReconnect(ctx)); err == nil || IsDialError(err) {
		t.Errorf("status without reconnect across a broken connection: %v, want the broken connection's error", err)
	}
	if n := status.calls.Load(); n != 1 {
		t.Errorf("GET /status without reconnect sent %d times, want 1", n)
	}
	if n := reconnects.Load(); n != 1 {
		t.Errorf("reconnected %d times for a probe without reconnect, want still 1", n)
	}
}
