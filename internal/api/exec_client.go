package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ExecIO is what Client.Exec connects to the command.
type ExecIO struct {
	// Stdin feeds the command; its EOF is passed on. nil gives an empty
	// input. Exec does not wait for Stdin to end: a terminal nobody types
	// into does not keep Exec from returning (the read stays pending).
	Stdin io.Reader
	// Stdout and Stderr receive the command's output; nil discards. With
	// a TTY, everything arrives on Stdout.
	Stdout, Stderr io.Writer
	// Resize passes terminal size changes to a TTY command; may be nil.
	Resize <-chan WindowSize
	// Signal passes signals by name ("INT", "TERM") to the command; may be nil.
	Signal <-chan string
}

// Exec runs req in the VM called name through the daemon's exec stream and
// returns the command's exit status (128+N when signal N killed it). err
// is non-nil only when no status is known: the request was refused (an
// *Error, as for every route), the command could not start, the
// connection broke, or ctx ended, which also ends the command (SIGTERM,
// then SIGKILL).
func (c *Client) Exec(ctx context.Context, name string, req ExecRequest, stdio ExecIO) (int, error) {
	conn, err := c.openExec(ctx, name, req)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	done := make(chan struct{})
	defer close(done)
	fw := NewFrameWriter(conn)
	go sendStdin(fw, stdio.Stdin)
	if stdio.Resize != nil || stdio.Signal != nil {
		go sendControl(fw, stdio.Resize, stdio.Signal, done)
	}
	code, err := receiveFrames(NewFrameReader(conn), orDiscard(stdio.Stdout), orDiscard(stdio.Stderr))
	if err != nil && ctx.Err() != nil {
		return -1, &Error{Code: CodeInterrupted, Message: fmt.Sprintf("exec in vm %s: %v", name, ctx.Err())}
	}
	return code, err
}

// openExec sends the exec request and returns the switched connection.
func (c *Client) openExec(ctx context.Context, name string, req ExecRequest) (io.ReadWriteCloser, error) {
	const what = "POST /exec"
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding exec request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://bangerd/"+Version+"/vms/"+esc(name)+"/exec", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building exec request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", ExecUpgrade)
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Code: CodeInterrupted, Message: fmt.Sprintf("%s: %v", what, ctx.Err())}
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &DialError{Socket: c.socket(), Err: unwrapDial(err)}
		}
		return nil, fmt.Errorf("talking to bangerd (exec in vm %s): %w", name, err)
	}
	if resp.StatusCode >= 400 {
		defer closeBody(resp)
		return nil, decodeError(resp)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		closeBody(resp)
		return nil, &Error{Code: CodeInternal,
			Message: fmt.Sprintf("bangerd answered %s to exec instead of switching to the exec stream", resp.Status),
			Hint:    "bangerd may be older than this banger; `banger daemon restart` starts the current one"}
	}
	return rwc, nil
}

// sendStdin sends stdin as frames, then stdin-close.
func sendStdin(fw *FrameWriter, stdin io.Reader) {
	if stdin != nil {
		buf := make([]byte, copyChunk)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if fw.WriteFrame(FrameStdin, buf[:n]) != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
	}
	_ = fw.WriteFrame(FrameStdinClose, nil)
}

// sendControl sends resize and signal frames until done.
func sendControl(fw *FrameWriter, resize <-chan WindowSize, signal <-chan string, done <-chan struct{}) {
	for resize != nil || signal != nil {
		var err error
		select {
		case <-done:
			return
		case ws, ok := <-resize:
			if !ok {
				resize = nil
				continue
			}
			err = fw.WriteFrame(FrameResize, ResizePayload(ws))
		case sig, ok := <-signal:
			if !ok {
				signal = nil
				continue
			}
			err = fw.WriteFrame(FrameSignal, []byte(sig))
		}
		if err != nil {
			return
		}
	}
}

// receiveFrames copies output frames until the exit or error frame.
func receiveFrames(fr *FrameReader, stdout, stderr io.Writer) (int, error) {
	for {
		t, p, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return -1, &Error{Code: CodeInternal, Message: errStreamEnded.Error(), Hint: "the daemon may have stopped; see `banger daemon logs`"}
			}
			return -1, fmt.Errorf("reading exec stream from bangerd: %w", err)
		}
		switch t {
		case FrameStdout:
			if _, err := stdout.Write(p); err != nil {
				return -1, fmt.Errorf("writing the command's output: %w", err)
			}
		case FrameStderr:
			if _, err := stderr.Write(p); err != nil {
				return -1, fmt.Errorf("writing the command's error output: %w", err)
			}
		case FrameExit:
			return ParseExit(p)
		case FrameError:
			return -1, ParseError(p)
		default:
			return -1, fmt.Errorf("reading exec stream from bangerd: unexpected %s frame", t)
		}
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
