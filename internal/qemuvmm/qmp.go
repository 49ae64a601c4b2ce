package qemuvmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Controller sends QMP commands to a running QEMU.
type Controller interface {
	// Execute runs one QMP command and returns its "return" value.
	Execute(ctx context.Context, command string, args any) (json.RawMessage, error)
	// Events delivers QMP events (SHUTDOWN, STOP, RESUME, …). It is closed
	// when the connection ends.
	Events() <-chan QMPEvent
	// Close ends the connection.
	Close() error
}

// QMPEvent is an asynchronous QMP message.
type QMPEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// QMPError is an error answer from QEMU.
type QMPError struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s (%s)", e.Command, e.Desc, e.Class)
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP,omitempty"`
	Return json.RawMessage `json:"return,omitempty"`
	Error  *QMPError       `json:"error,omitempty"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	ID     *uint64         `json:"id,omitempty"`
}

// QMPConn is a QMP client on a unix socket. Commands are serialised; each
// carries an id so that its answer is matched even when events interleave.
type QMPConn struct {
	conn   net.Conn
	cmdMu  sync.Mutex
	mu     sync.Mutex
	nextID uint64
	wait   map[uint64]chan qmpMessage
	events chan QMPEvent
	done   chan struct{}
	err    error
}

// DialQMP connects to QEMU's QMP socket at path, retrying until the socket
// accepts or ctx ends, then reads the greeting and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (Controller, error) {
	var d net.Dialer
	var conn net.Conn
	for {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to qmp socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	q := &QMPConn{
		conn:   conn,
		wait:   map[uint64]chan qmpMessage{},
		events: make(chan QMPEvent, 64),
		done:   make(chan struct{}),
	}
	r := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	greeting, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading qmp greeting from %s: %w", path, err)
	}
	var g qmpMessage
	if err := json.Unmarshal(greeting, &g); err != nil || g.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("reading qmp greeting from %s: unexpected %q", path, greeting)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go q.readLoop(r)
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMPConn) readLoop(r *bufio.Reader) {
	dec := json.NewDecoder(r)
	var err error
	for {
		var m qmpMessage
		if err = dec.Decode(&m); err != nil {
			break
		}
		if m.Event != "" {
			select {
			case q.events <- QMPEvent{Event: m.Event, Data: m.Data}:
			default: // Nobody is listening closely enough; drop it.
			}
			continue
		}
		if m.ID == nil {
			continue
		}
		q.mu.Lock()
		ch := q.wait[*m.ID]
		delete(q.wait, *m.ID)
		q.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	q.mu.Lock()
	q.err = fmt.Errorf("reading from qmp: %w", err)
	q.mu.Unlock()
	close(q.done)
	close(q.events)
}

// Execute implements Controller.
func (q *QMPConn) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	q.mu.Lock()
	q.nextID++
	id := q.nextID
	ch := make(chan qmpMessage, 1)
	q.wait[id] = ch
	q.mu.Unlock()
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding qmp %s: %w", command, err)
	}
	if _, err := q.conn.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("sending qmp %s: %w", command, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			m.Error.Command = command
			return nil, m.Error
		}
		return m.Return, nil
	case <-q.done:
		q.mu.Lock()
		err := q.err
		q.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	case <-ctx.Done():
		q.mu.Lock()
		delete(q.wait, id)
		q.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
}

// Events implements Controller.
func (q *QMPConn) Events() <-chan QMPEvent { return q.events }

// Close implements Controller.
func (q *QMPConn) Close() error {
	err := q.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
