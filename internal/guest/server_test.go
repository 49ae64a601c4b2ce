package guest

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fakeGuest is an in-process SSH server that stands in for a guest. It
// accepts one user key, presents one host key, and runs "exec" requests
// through a small command fake: echo, exit N, cat, sleep, and the untar
// command Upload sends, which it extracts into root.
type fakeGuest struct {
	t     testing.TB
	root  string
	ln    net.Listener
	conns atomic.Int32
	// dropFirst makes the first N accepted TCP connections close before the
	// SSH banner, like a guest whose sshd is not up yet.
	dropFirst atomic.Int32
	mu        sync.Mutex
	signals   []string
	// shell, when set, runs every exec request as `shell -c LINE` in home
	// with PATH from path, as a guest's sshd does, instead of the command
	// fake: pty-req, window-change and signal requests reach the process.
	shell string
	home  string
	path  string
}

func newFakeGuest(t testing.TB, host HostKey, user ssh.PublicKey) *fakeGuest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGuest{t: t, root: t.TempDir(), ln: ln}
	signer, err := ssh.ParsePrivateKey(host.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(user.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if g.conns.Add(1) <= g.dropFirst.Load() {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); g.serve(c, cfg) }()
		}
	}()
	return g
}

func (g *fakeGuest) addr() string { return g.ln.Addr().String() }

func (g *fakeGuest) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); g.session(ch, creqs) }()
	}
	wg.Wait()
}

func (g *fakeGuest) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	killed := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	var pty *ptyRequest
	var proc *shellProc
	defer func() {
		if proc != nil {
			proc.kill()
		}
	}()
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			pty = new(ptyRequest)
			ok := g.shell != "" && ssh.Unmarshal(req.Payload, pty) == nil
			req.Reply(ok, nil)
		case "window-change":
			var wc windowChange
			if proc != nil && ssh.Unmarshal(req.Payload, &wc) == nil {
				proc.resize(wc.Rows, wc.Columns)
			}
		case "exec":
			n := binary.BigEndian.Uint32(req.Payload)
			line := string(req.Payload[4 : 4+n])
			if g.shell != "" {
				p, err := g.startShell(line, ch, pty)
				req.Reply(err == nil, nil)
				if err != nil {
					g.t.Errorf("fake guest: starting %q: %v", line, err)
					return
				}
				proc = p
				go p.finish(ch)
				continue
			}
			req.Reply(true, nil)
			go func() {
				code := g.run(line, ch, ch, ch.Stderr(), killed)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
				ch.Close()
				close(done)
			}()
		case "signal":
			g.mu.Lock()
			g.signals = append(g.signals, string(req.Payload[4:]))
			g.mu.Unlock()
			if proc != nil {
				proc.signal(string(req.Payload[4:]))
			}
			once.Do(func() { close(killed) })
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	once.Do(func() { close(killed) })
}

func (g *fakeGuest) run(line string, stdin io.Reader, stdout, stderr io.Writer, killed <-chan struct{}) int {
	switch {
	case strings.HasPrefix(line, "echo "):
		fmt.Fprintln(stdout, strings.TrimPrefix(line, "echo "))
		return 0
	case strings.HasPrefix(line, "exit "):
		var code int
		fmt.Sscan(strings.TrimPrefix(line, "exit "), &code)
		fmt.Fprintln(stderr, "something went wrong")
		return code
	case line == "cat":
		io.Copy(stdout, stdin)
		return 0
	case line == "sleep":
		<-killed
		return 137
	case strings.HasPrefix(line, "cat -- "):
		data, err := os.ReadFile(filepath.Join(g.root, unquote(strings.TrimPrefix(line, "cat -- "))))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		stdout.Write(data)
		return 0
	case strings.HasPrefix(line, "mkdir -p -- "):
		dir := unquote(strings.SplitN(strings.TrimPrefix(line, "mkdir -p -- "), " && ", 2)[0])
		if line != UntarCommand(dir) {
			fmt.Fprintf(stderr, "unexpected command %q", line)
			return 127
		}
		if err := extractTar(stdin, filepath.Join(g.root, dir)); err != nil {
			fmt.Fprintln(stderr, "tar:", err)
			return 2
		}
		return 0
	}
	fmt.Fprintf(stderr, "sh: %s: not found\n", line)
	return 127
}

func unquote(s string) string {
	if strings.HasPrefix(s, "'") {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'")
		return strings.ReplaceAll(s, `'\''`, "'")
	}
	return s
}

// extractTar unpacks a tar stream into dir the way `tar -x -C dir` run by
// root does: modes, symlinks, and owners from the archive.
func extractTar(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			return fmt.Errorf("%s: owner %d:%d, want root", hdr.Name, hdr.Uid, hdr.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)) {
			return fmt.Errorf("%s escapes the destination", hdr.Name)
		}
		mode := hdr.FileInfo().Mode()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
			continue
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if err := errors.Join(err, f.Close()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected type %c", hdr.Name, hdr.Typeflag)
		}
		if err := os.Chmod(p, mode&os.ModePerm|mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return err
		}
	}
}
