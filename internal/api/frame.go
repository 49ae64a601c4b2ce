package api

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// FrameType says what a frame of an exec stream carries.
//
// A frame is a 5-byte header, the type (1 byte) and the payload's length
// (4 bytes, big-endian), followed by the payload. The client sends stdin,
// stdin-close, resize and signal frames; the daemon sends stdout, stderr
// and, last, exactly one exit or error frame, then closes the connection.
// A client that closes the connection ends the command (SIGTERM, then
// SIGKILL).
type FrameType byte

// Frame types and their payloads.
const (
	FrameStdin      FrameType = 1 // client: bytes for the command's stdin
	FrameStdinClose FrameType = 2 // client: stdin ended (EOF); no payload
	FrameStdout     FrameType = 3 // daemon: bytes the command wrote to stdout
	FrameStderr     FrameType = 4 // daemon: bytes the command wrote to stderr
	FrameResize     FrameType = 5 // client: rows, cols (uint16 each, big-endian)
	FrameSignal     FrameType = 6 // client: a signal name, "INT", "TERM", …
	FrameExit       FrameType = 7 // daemon: the exit status (int32, big-endian); 128+N for signal N
	FrameError      FrameType = 8 // daemon: {"error":{…}}, the API's error shape; no status is known
)

func (t FrameType) String() string {
	switch t {
	case FrameStdin:
		return "stdin"
	case FrameStdinClose:
		return "stdin-close"
	case FrameStdout:
		return "stdout"
	case FrameStderr:
		return "stderr"
	case FrameResize:
		return "resize"
	case FrameSignal:
		return "signal"
	case FrameExit:
		return "exit"
	case FrameError:
		return "error"
	}
	return fmt.Sprintf("frame type %d", byte(t))
}

const (
	frameHeaderLen = 5
	// MaxFramePayload bounds one frame's payload; writers split larger data.
	MaxFramePayload = 1 << 20
	// copyChunk is how much data a pump reads before sending a frame.
	copyChunk = 64 << 10
)

// FrameReader reads frames from a stream.
type FrameReader struct {
	r   *bufio.Reader
	hdr [frameHeaderLen]byte
	buf []byte
}

// NewFrameReader reads frames from r; a *bufio.Reader is used as is, so
// bytes it already buffered (after an HTTP upgrade) are not lost.
func NewFrameReader(r io.Reader) *FrameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, copyChunk+frameHeaderLen)
	}
	return &FrameReader{r: br}
}

// ReadFrame returns the next frame. The payload is valid until the next
// call. A stream that ends between frames gives io.EOF; one that ends
// inside a frame gives io.ErrUnexpectedEOF.
func (fr *FrameReader) ReadFrame() (FrameType, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[1:])
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("reading exec stream: %s frame of %d bytes is over the %d-byte limit", FrameType(fr.hdr[0]), n, MaxFramePayload)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(fr.hdr[0]), p, nil
}

// FrameWriter writes frames to a stream; it is safe for concurrent use,
// and each frame reaches the stream in one Write.
type FrameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error
}

// NewFrameWriter writes frames to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame writes one frame, or several when the payload is over
// MaxFramePayload. After a failed write every later one fails the same way.
func (fw *FrameWriter) WriteFrame(t FrameType, payload []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for {
		if fw.err != nil {
			return fw.err
		}
		chunk := payload
		if len(chunk) > MaxFramePayload {
			chunk = chunk[:MaxFramePayload]
		}
		fw.buf = append(fw.buf[:0], byte(t), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(fw.buf[1:], uint32(len(chunk)))
		fw.buf = append(fw.buf, chunk...)
		if _, err := fw.w.Write(fw.buf); err != nil {
			fw.err = fmt.Errorf("writing exec stream: %w", err)
		}
		if cap(fw.buf) > 4*copyChunk {
			fw.buf = nil // do not keep one large frame's buffer
		}
		payload = payload[len(chunk):]
		if len(payload) == 0 {
			return fw.err
		}
	}
}

// ResizePayload encodes a resize frame's payload.
func ResizePayload(ws WindowSize) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, ws.Rows), ws.Cols)
}

// ParseResize decodes a resize frame's payload.
func ParseResize(p []byte) (WindowSize, error) {
	if len(p) != 4 {
		return WindowSize{}, fmt.Errorf("resize frame of %d bytes, want 4", len(p))
	}
	return WindowSize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])}, nil
}

// ExitPayload encodes an exit frame's payload.
func ExitPayload(code int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(int32(code))) }

// ParseExit decodes an exit frame's payload.
func ParseExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("exit frame of %d bytes, want 4", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}

// ErrorPayload encodes an error frame's payload in the API's error shape.
func ErrorPayload(err error) []byte {
	b, _ := json.Marshal(ErrorBody{Error: AsError(err)})
	return b
}

// ParseError decodes an error frame's payload.
func ParseError(p []byte) *Error {
	var body ErrorBody
	if err := json.Unmarshal(p, &body); err != nil || body.Error == nil {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("bangerd sent an unreadable exec error: %q", p)}
	}
	return body.Error
}

// errStreamEnded says the daemon closed an exec stream without a status.
var errStreamEnded = errors.New("bangerd closed the exec stream before the command's exit status")
