package qemuvmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// serveFakeQMP accepts one connection on path and speaks QMP: a greeting,
// then answers per command, with an event before every answer to check
// that events and answers are told apart.
func serveFakeQMP(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": ["oob"]}}` + "\n"))
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &req) != nil {
				return
			}
			c.Write([]byte(`{"event": "NOISE", "data": {"cmd": "` + req.Execute + `"}}` + "\n"))
			switch req.Execute {
			case "qmp_capabilities", "stop":
				c.Write([]byte(`{"return": {}, "id": ` + string(req.ID) + "}\n"))
			case "quit":
				c.Write([]byte(`{"return": {}, "id": ` + string(req.ID) + "}\n"))
				return
			default:
				c.Write([]byte(`{"error": {"class": "CommandNotFound", "desc": "The command ` + req.Execute + ` has not been found"}, "id": ` + string(req.ID) + "}\n"))
			}
		}
	}()
}

func TestQMPConn(t *testing.T) {
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := dir + "/q.sock"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Dial before the socket exists: DialQMP retries until it appears.
	go func() {
		time.Sleep(30 * time.Millisecond)
		serveFakeQMP(t, path)
	}()
	q, err := DialQMP(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Execute(ctx, "stop", nil); err != nil {
		t.Errorf("stop: %v", err)
	}
	_, err = q.Execute(ctx, "bogus", map[string]any{"x": 1})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || qe.Command != "bogus" {
		t.Errorf("bogus: %v, want a CommandNotFound QMPError", err)
	}
	ev := <-q.Events()
	if ev.Event != "NOISE" {
		t.Errorf("first event = %+v", ev)
	}
	if _, err := q.Execute(ctx, "quit", nil); err != nil {
		t.Errorf("quit: %v", err)
	}
	// The server hung up: the event channel closes and commands fail.
	for range q.Events() {
	}
	if _, err := q.Execute(ctx, "stop", nil); err == nil {
		t.Error("command after hang-up: want error")
	}
}

func TestDialQMPGivesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := DialQMP(ctx, "/nonexistent/qmp.sock"); err == nil {
		t.Error("DialQMP on a missing socket: want error")
	}
}
