package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"banger/internal/api"

	"github.com/google/go-cmp/cmp"
)

// *Process is what the daemon hands to api.ServeExec.
var _ api.ExecProcess = (*Process)(nil)

// serveExecAPI serves POST /v1/vms/{name}/exec the way the daemon will:
// api.UpgradeExec, then api.ServeExec over a guest Client's Start.
func serveExecAPI(t testing.TB, c *Client) string {
	sock := filepath.Join(t.TempDir(), "bangerd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vms/{name}/exec", func(w http.ResponseWriter, r *http.Request) {
		var req api.ExecRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		greq := ExecRequest{Argv: req.Argv, Env: req.Env, Dir: req.Workdir, User: req.User, TTY: req.TTY, Term: req.Term,
			Size: WindowSize{Rows: int(req.Size.Rows), Cols: int(req.Size.Cols)}}
		conn, rw, err := api.UpgradeExec(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		api.ServeExec(r.Context(), conn, rw, func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (api.ExecProcess, error) {
			p, err := c.Start(ctx, greq, stdin, stdout, stderr)
			if err != nil {
				return nil, err
			}
			return p, nil
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestExecThroughTheAPIStream(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	ac := api.NewClient(serveExecAPI(t, c))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out, errb bytes.Buffer
	argv := append(slices.Clone(argvPrinter), hostileArgs...)
	code, err := ac.Exec(ctx, "dev", api.ExecRequest{Argv: argv}, api.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 {
		t.Fatalf("printer: %d, %v, %s", code, err, errb.String())
	}
	if diff := cmp.Diff(hostileArgs, decodeLines(t, out.String())); diff != "" {
		t.Errorf("arguments through the API (-sent +got):\n%s", diff)
	}

	data := make([]byte, 10<<20)
	rand.Read(data)
	out.Reset()
	code, err = ac.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"sh", "-c", "cat; echo done >&2; exit 7"}}, api.ExecIO{Stdin: bytes.NewReader(data), Stdout: &out, Stderr: &errb})
	if err != nil || code != 7 || !bytes.Equal(out.Bytes(), data) {
		t.Errorf("cat of 10 MiB: exit %d, %v, %d bytes back", code, err, out.Len())
	}
	errb.Reset()
	code, err = ac.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}}, api.ExecIO{Stderr: &errb})
	if err != nil || code != 128+15 {
		t.Errorf("killed by SIGTERM: %d, %v; want 143", code, err)
	}
}

// BenchmarkExecTrueThroughAPI is `vm exec NAME -- true` minus the CLI's
// start-up: API upgrade, SSH session on an open connection, the guest
// shell exec'ing true (here: the host's /bin/sh behind the fake sshd).
func BenchmarkExecTrueThroughAPI(b *testing.B) {
	e := newTestEnv(b)
	e.guest.useShell("/bin/sh", "")
	ctx := context.Background()
	c, err := Dial(ctx, e.guest.addr(), e.cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sock := serveExecAPI(b, c)
	for b.Loop() {
		ac := api.NewClient(sock)
		if code, err := ac.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"true"}}, api.ExecIO{}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
		ac.CloseIdleConnections()
	}
}
