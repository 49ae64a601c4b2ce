package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ExecProcess is a started command that ServeExec pumps frames to and
// from; *guest.Process satisfies it.
type ExecProcess interface {
	// Wait returns the exit status once the command ended and its output
	// was written, or an error when no status is known.
	Wait() (int, error)
	Resize(rows, cols int) error
	Signal(name string) error
}

// ExecStarter starts the command with the streams ServeExec provides.
// ctx ends when the client goes away, and the command must then end.
type ExecStarter func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (ExecProcess, error)

// IsExecUpgrade reports whether r asks to switch to an exec stream.
func IsExecUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), ExecUpgrade)
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// UpgradeExec switches an exec request's connection to the frame stream:
// it reads what is left of the request body, takes the connection from
// the HTTP server, clears its deadlines and answers 101 Switching
// Protocols. Call it once every check that can fail with an ordinary JSON
// error has passed; the caller then owns the connection (see ServeExec).
func UpgradeExec(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.ReadWriter, error) {
	if !IsExecUpgrade(r) {
		return nil, nil, Errorf(CodeInvalid, "exec needs the headers Connection: Upgrade and Upgrade: %s", ExecUpgrade).
			WithHint("use banger vm exec, or the api client's Exec")
	}
	// Bytes of the body left unread would be taken for frames.
	if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)); err != nil {
		return nil, nil, fmt.Errorf("reading exec request: %w", err)
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("switching to the exec stream: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + ExecUpgrade + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("switching to the exec stream: %w", err)
	}
	return conn, rw, nil
}

// finalFrameWait bounds how long ServeExec waits, after the last frame,
// for the client to close its side.
const finalFrameWait = time.Second

// ServeExec runs one exec stream on a connection UpgradeExec returned:
// it starts the command, feeds it the client's stdin, resize and signal
// frames, sends its stdout and stderr as frames, and ends with one exit
// frame (or an error frame when the command could not start or no status
// is known), then closes conn. A client that goes away cancels the
// command's context. Frames are handled in order: stdin the command does
// not read holds back later resize and signal frames once the guest's
// buffers (a few MiB) are full. The error returned is for the daemon's log.
func ServeExec(ctx context.Context, conn net.Conn, rw *bufio.ReadWriter, start ExecStarter) error {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fw := NewFrameWriter(conn)
	stdinR, stdinW := io.Pipe()
	defer stdinR.Close()
	stdout := frameSink{fw: fw, t: FrameStdout, fail: cancel}
	stderr := frameSink{fw: fw, t: FrameStderr, fail: cancel}
	p, err := start(ctx, stdinR, stdout, stderr)
	if err != nil {
		fw.writeFinal(FrameError, ErrorPayload(err))
		return fmt.Errorf("starting exec: %w", err)
	}
	readerDone := make(chan error, 1)
	go func() { readerDone <- readClientFrames(NewFrameReader(rw.Reader), p, stdinW, cancel) }()
	code, err := p.Wait()
	stdinR.CloseWithError(io.EOF) // a stdin frame still being delivered is dropped
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("exec client went away: %w", err)
		}
		fw.writeFinal(FrameError, ErrorPayload(err))
	} else {
		fw.writeFinal(FrameExit, ExitPayload(code))
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		t := time.NewTimer(finalFrameWait)
		select {
		case <-readerDone:
		case <-t.C:
		}
		t.Stop()
	}
	return err
}

// readClientFrames delivers the client's frames until the connection ends,
// and cancels the command when it ends before the command does.
func readClientFrames(fr *FrameReader, p ExecProcess, stdin *io.PipeWriter, cancel context.CancelFunc) error {
	defer cancel()
	for {
		t, payload, err := fr.ReadFrame()
		if err != nil {
			stdin.CloseWithError(err)
			return err
		}
		switch t {
		case FrameStdin:
			_, _ = stdin.Write(payload)
		case FrameStdinClose:
			stdin.Close()
		case FrameResize:
			if ws, err := ParseResize(payload); err == nil {
				_ = p.Resize(int(ws.Rows), int(ws.Cols))
			}
		case FrameSignal:
			_ = p.Signal(string(payload))
		default:
			err := fmt.Errorf("reading exec stream: unexpected %s frame from the client", t)
			stdin.CloseWithError(err)
			return err
		}
	}
}

// frameSink is an io.Writer that sends each write as frames of one type.
type frameSink struct {
	fw   *FrameWriter
	t    FrameType
	fail context.CancelFunc
}

func (s frameSink) Write(p []byte) (int, error) {
	if err := s.fw.WriteFrame(s.t, p); err != nil {
		s.fail()
		return 0, err
	}
	return len(p), nil
}

// errFinished fails writes after the last frame.
var errFinished = errors.New("exec stream finished")

// writeFinal writes the stream's last frame; later writes fail.
func (fw *FrameWriter) writeFinal(t FrameType, payload []byte) {
	_ = fw.WriteFrame(t, payload)
	fw.mu.Lock()
	fw.err = errFinished
	fw.mu.Unlock()
}
