package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Client talks to bangerd over its unix socket. The zero value uses the
// default socket of the current user. A Client keeps its connections open
// between requests and is safe for concurrent use; set Socket and HTTP
// before the first request and do not copy a Client after it.
type Client struct {
	// Socket is the daemon's socket path; empty means DefaultSocket().
	Socket string
	// HTTP is the HTTP client; nil means one dialing Socket. Tests inject
	// their own transport here.
	HTTP *http.Client
	// Reconnect, when set, is called once when the connection of a
	// request that changes nothing (GET) breaks, as it does when the
	// daemon dies under it; the request is then sent again. The CLI
	// starts a fresh daemon here. A request that changes something is
	// never sent twice.
	Reconnect func(ctx context.Context) error

	once sync.Once
	own  *http.Client // built on first use when HTTP is nil
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client { return &Client{Socket: socket} }

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultSocket()
}

// httpClient returns the injected HTTP client, or the Client's own one,
// built once so that every request shares its transport and connections.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.once.Do(func() {
		sock := c.socket()
		c.own = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableCompression: true,
			// Every request goes to the one daemon; keep enough idle
			// connections for the TUI's concurrent polls and actions.
			MaxIdleConnsPerHost: 8,
		}}
	})
	return c.own
}

// CloseIdleConnections closes the connections the Client keeps open
// between requests. The Client stays usable.
func (c *Client) CloseIdleConnections() { c.httpClient().CloseIdleConnections() }

// DialError says the daemon could not be reached at all.
type DialError struct {
	Socket string
	Err    error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("connecting to bangerd at %s: %v: is bangerd running? (`banger daemon start` starts it; `banger daemon logs` shows why it stopped)", e.Socket, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// IsDialError reports whether err means no daemon answered on the socket.
func IsDialError(err error) bool {
	var d *DialError
	return errors.As(err, &d)
}

// noRetry marks a context whose requests are not retried: Reconnect's own,
// and WithoutReconnect's.
type noRetry struct{}

// WithoutReconnect returns ctx marked so that a broken connection fails the
// request instead of calling Reconnect. Code that stops, starts or waits
// for the daemon probes it this way: a probe that met a daemon on its way
// out must see it go, not start another one.
func WithoutReconnect(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetry{}, true)
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil && c.Reconnect != nil && method == http.MethodGet && brokenConn(err) && ctx.Value(noRetry{}) == nil {
		if rerr := c.Reconnect(WithoutReconnect(ctx)); rerr != nil {
			return nil, fmt.Errorf("%w; restarting bangerd to retry: %w", err, rerr)
		}
		return c.send(ctx, method, path, body)
	}
	return resp, err
}

// brokenConn reports whether err is a connection to the daemon that broke
// after it was made: the daemon died or was killed while answering.
func brokenConn(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://bangerd/"+Version+path, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Code: CodeInterrupted, Message: fmt.Sprintf("%s %s: %v", method, path, ctx.Err())}
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &DialError{Socket: c.socket(), Err: unwrapDial(err)}
		}
		if brokenConn(err) && method != http.MethodGet {
			return nil, fmt.Errorf("talking to bangerd (%s %s): %w: bangerd went away while answering (`banger daemon logs` says why), so whether it acted is unknown; check with `banger vm list` before trying again", method, path, err)
		}
		return nil, fmt.Errorf("talking to bangerd (%s %s): %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer closeBody(resp)
		return nil, decodeError(resp)
	}
	return resp, nil
}

// closeBody reads what is left of a finished answer before closing it: a
// body closed before its end takes its connection down with it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func unwrapDial(err error) error {
	var sys syscall.Errno
	if errors.As(err, &sys) {
		return sys
	}
	return err
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body ErrorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Error != nil {
		return body.Error
	}
	return &Error{Code: CodeInternal, Message: fmt.Sprintf("bangerd answered %s: %s", resp.Status, strings.TrimSpace(string(data)))}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding bangerd's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// stream runs an operation that answers with NDJSON lines, passing progress
// to onProgress (which may be nil) and returning the final line.
func (c *Client) stream(ctx context.Context, method, path string, body any, onProgress func(Progress)) (StreamLine, error) {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return StreamLine{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var line StreamLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return StreamLine{}, fmt.Errorf("decoding progress from bangerd (%s %s): %w", method, path, err)
		}
		switch {
		case line.Error != nil:
			closeBody(resp)
			return line, line.Error
		case line.Progress != nil:
			if onProgress != nil {
				onProgress(*line.Progress)
			}
		case line.Done:
			closeBody(resp)
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return StreamLine{}, &Error{Code: CodeInterrupted, Message: fmt.Sprintf("%s %s: %v", method, path, ctx.Err())}
		}
		return StreamLine{}, fmt.Errorf("reading progress from bangerd (%s %s): %w", method, path, err)
	}
	return StreamLine{}, &Error{Code: CodeInternal, Message: fmt.Sprintf("bangerd ended %s %s without a result", method, path), Hint: "the daemon may have stopped; see `banger daemon logs`"}
}

func esc(s string) string { return url.PathEscape(s) }

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &s)
	return s, err
}

// Check compares the host with the daemon's database (fix false) or
// repairs the difference as reconcile would (fix true).
func (c *Client) Check(ctx context.Context, fix bool) (CheckReport, error) {
	var rep CheckReport
	method := http.MethodGet
	if fix {
		method = http.MethodPost
	}
	err := c.do(ctx, method, "/system/check", nil, &rep)
	return rep, err
}

// Doctor runs the daemon's host checks.
func (c *Client) Doctor(ctx context.Context) ([]Check, error) {
	var out []Check
	err := c.do(ctx, http.MethodGet, "/doctor", nil, &out)
	return out, err
}

// DNSSetup routes NAME.vm to the daemon in the host's resolver, or undoes
// it (req.Remove). The daemon records the choice and re-applies it when it
// makes the bridge.
func (c *Client) DNSSetup(ctx context.Context, req DNSSetupRequest) (DNSSetup, error) {
	var out DNSSetup
	err := c.do(ctx, http.MethodPost, "/dns/setup", req, &out)
	return out, err
}

// WaitVM returns when the VM's guest answers on SSH, waiting for a VM that
// is still booting.
func (c *Client) WaitVM(ctx context.Context, name string, req WaitVMRequest) (VM, error) {
	var out VM
	err := c.do(ctx, http.MethodPost, "/vms/"+esc(name)+"/wait", req, &out)
	return out, err
}

// Forwards adds and removes port forwards of a VM and returns the VM.
func (c *Client) Forwards(ctx context.Context, name string, req ForwardsRequest) (VM, error) {
	var out VM
	err := c.do(ctx, http.MethodPost, "/vms/"+esc(name)+"/forwards", req, &out)
	return out, err
}

// Shutdown asks the daemon to exit. Running VMs keep running.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/shutdown", nil, nil)
}

// VMs lists VMs; all includes the image builder's hidden VMs.
func (c *Client) VMs(ctx context.Context, all bool) ([]VM, error) {
	var vms []VM
	path := "/vms"
	if all {
		path += "?all=1"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &vms)
	return vms, err
}

// VM returns one VM by name.
func (c *Client) VM(ctx context.Context, name string) (VM, error) {
	var v VM
	err := c.do(ctx, http.MethodGet, "/vms/"+esc(name), nil, &v)
	return v, err
}

// CreateVM creates (and unless NoStart, boots) a VM, streaming progress.
func (c *Client) CreateVM(ctx context.Context, req CreateVMRequest, onProgress func(Progress)) (VM, []string, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms", req, onProgress)
	return vmOf(line), line.Warnings, err
}

// StartVM boots a stopped VM.
func (c *Client) StartVM(ctx context.Context, name string, waitSSH bool, onProgress func(Progress)) (VM, error) {
	path := "/vms/" + esc(name) + "/start"
	if waitSSH {
		path += "?wait_ssh=1"
	}
	line, err := c.stream(ctx, http.MethodPost, path, nil, onProgress)
	return vmOf(line), err
}

// StopVM shuts a VM down gracefully, escalating after the timeout.
func (c *Client) StopVM(ctx context.Context, name string, req StopVMRequest, onProgress func(Progress)) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/stop", req, onProgress)
	return vmOf(line), err
}

// KillVM stops a VM's VMM at once with SIGKILL.
func (c *Client) KillVM(ctx context.Context, name string) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/kill", nil, nil)
	return vmOf(line), err
}

// PauseVM stops a running VM's vCPUs; its memory and VMM stay.
func (c *Client) PauseVM(ctx context.Context, name string) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/pause", nil, nil)
	return vmOf(line), err
}

// ResumeVM lets a paused VM run again.
func (c *Client) ResumeVM(ctx context.Context, name string) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/resume", nil, nil)
	return vmOf(line), err
}

// SuspendVM saves a running or paused VM's state and memory to disk and
// ends its VMM; StartVM resumes it.
func (c *Client) SuspendVM(ctx context.Context, name string, onProgress func(Progress)) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/suspend", nil, onProgress)
	return vmOf(line), err
}

// CloneVM forks a running, paused or suspended VM into a new VM called
// name, with its own disks and identity; it returns when the clone
// answers SSH.
func (c *Client) CloneVM(ctx context.Context, src, name string, onProgress func(Progress)) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(src)+"/clone", CloneVMRequest{Name: name}, onProgress)
	return vmOf(line), err
}

// WarmImage makes the warm template of an image and shape (a VM booted
// once and suspended) that vm create of that shape restores from.
func (c *Client) WarmImage(ctx context.Context, name string, req WarmImageRequest, onProgress func(Progress)) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/images/"+esc(name)+"/warm", req, onProgress)
	return vmOf(line), err
}

// RestartVM stops and starts a VM.
func (c *Client) RestartVM(ctx context.Context, name string, waitSSH bool, onProgress func(Progress)) (VM, error) {
	path := "/vms/" + esc(name) + "/restart"
	if waitSSH {
		path += "?wait_ssh=1"
	}
	line, err := c.stream(ctx, http.MethodPost, path, nil, onProgress)
	return vmOf(line), err
}

// ResizeVM grows a stopped VM's work disk.
func (c *Client) ResizeVM(ctx context.Context, name string, req ResizeVMRequest, onProgress func(Progress)) (VM, error) {
	line, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/resize", req, onProgress)
	return vmOf(line), err
}

// RemoveVM deletes a VM and everything banger made for it.
func (c *Client) RemoveVM(ctx context.Context, name string, req RemoveVMRequest) error {
	return c.RemoveVMWithProgress(ctx, name, req, nil)
}

// RemoveVMWithProgress is RemoveVM reporting its steps, and the wait of a
// forced removal for an operation in progress on the VM, to onProgress.
func (c *Client) RemoveVMWithProgress(ctx context.Context, name string, req RemoveVMRequest, onProgress func(Progress)) error {
	_, err := c.stream(ctx, http.MethodPost, "/vms/"+esc(name)+"/remove", req, onProgress)
	return err
}

// VMLogs copies a VM's log ("console" or "vmm") to w; with follow it keeps
// streaming until ctx ends.
func (c *Client) VMLogs(ctx context.Context, name, source string, follow bool, w io.Writer) error {
	return c.VMLogsTail(ctx, name, source, follow, 0, w)
}

// VMLogsTail is VMLogs starting at the last tail lines (0: the whole log).
func (c *Client) VMLogsTail(ctx context.Context, name, source string, follow bool, tail int, w io.Writer) error {
	q := url.Values{"source": {source}}
	if follow {
		q.Set("follow", "1")
	}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	resp, err := c.request(ctx, http.MethodGet, "/vms/"+esc(name)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// Images lists images.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var imgs []Image
	err := c.do(ctx, http.MethodGet, "/images", nil, &imgs)
	return imgs, err
}

// Image returns one image by name.
func (c *Client) Image(ctx context.Context, name string) (Image, error) {
	var img Image
	err := c.do(ctx, http.MethodGet, "/images/"+esc(name), nil, &img)
	return img, err
}

// RemoveImage deletes an image that no VM uses.
func (c *Client) RemoveImage(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/images/"+esc(name), nil, nil)
}

// PruneImages removes what banger keeps for speed but no image or VM
// needs: unused bootstrap cache entries, unused blank disk templates and
// old build logs (with req.DryRun, only lists them).
func (c *Client) PruneImages(ctx context.Context, req PruneRequest) (PruneResult, error) {
	var out PruneResult
	err := c.do(ctx, http.MethodPost, "/images/prune", req, &out)
	return out, err
}

// Events streams state changes to fn until ctx ends or fn returns an error.
func (c *Client) Events(ctx context.Context, fn func(Event) error) error {
	resp, err := c.request(ctx, http.MethodGet, "/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return &Error{Code: CodeUnavailable, Message: "bangerd closed the event stream", Hint: "the daemon stopped or restarted; run the command again"}
			}
			return fmt.Errorf("reading events from bangerd: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

func vmOf(line StreamLine) VM {
	if line.VM != nil {
		return *line.VM
	}
	return VM{}
}

// BootstrapImage builds and registers a base image from Debian packages,
// streaming progress.
func (c *Client) BootstrapImage(ctx context.Context, req BootstrapImageRequest, onProgress func(Progress)) (Image, error) {
	line, err := c.stream(ctx, http.MethodPost, "/images/bootstrap", req, onProgress)
	if line.Image != nil {
		return *line.Image, err
	}
	return Image{}, err
}

// BuildImage builds and registers an image from a booted temporary VM,
// streaming progress (including the build's command output).
func (c *Client) BuildImage(ctx context.Context, req BuildImageRequest, onProgress func(Progress)) (Image, error) {
	line, err := c.stream(ctx, http.MethodPost, "/images/build", req, onProgress)
	if line.Image != nil {
		return *line.Image, err
	}
	return Image{}, err
}

// CommitImage registers a stopped VM's root disk as a new image.
func (c *Client) CommitImage(ctx context.Context, req CommitImageRequest, onProgress func(Progress)) (Image, error) {
	line, err := c.stream(ctx, http.MethodPost, "/images/commit", req, onProgress)
	if line.Image != nil {
		return *line.Image, err
	}
	return Image{}, err
}
