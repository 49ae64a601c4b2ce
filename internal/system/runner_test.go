package system

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestExecRunnerErrorCarriesArgvAndStderr(t *testing.T) {
	_, err := Plain().Output(context.Background(), "sh", "-c", "echo boom >&2; exit 3")
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CommandError", err)
	}
	if ce.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", ce.ExitCode)
	}
	if !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "sh -c") {
		t.Errorf("error %q lacks stderr or argv", err)
	}
}

func TestExecRunnerSetsCLocale(t *testing.T) {
	out, err := Plain().Output(context.Background(), "sh", "-c", "echo $LC_ALL")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "C" {
		t.Errorf("LC_ALL = %q, want C", got)
	}
}

func TestExecRunnerMissingProgram(t *testing.T) {
	err := Plain().Run(context.Background(), "banger-no-such-program")
	if !IsNotFound(err) {
		t.Errorf("err = %v, want not-found", err)
	}
}

func TestFakeRecordsCalls(t *testing.T) {
	f := &Fake{Handler: func(argv []string, stdin []byte) ([]byte, error) {
		if argv[0] == "fail" {
			return nil, errors.New("scripted failure")
		}
		return stdin, nil
	}}
	out, err := f.RunInput(context.Background(), strings.NewReader("hi"), "cat")
	if err != nil || string(out) != "hi" {
		t.Fatalf("RunInput = %q, %v", out, err)
	}
	if err := f.Run(context.Background(), "fail", "x"); err == nil {
		t.Error("scripted failure not returned")
	}
	if got := strings.Join(f.CallLines(), "|"); got != "cat|fail x" {
		t.Errorf("calls = %q", got)
	}
}

func TestLines(t *testing.T) {
	got := Lines([]byte("  a \n\n b\n"))
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("Lines = %q", got)
	}
}

func TestCancelEndsTheWholeCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// The grandchild keeps the output pipe open: without killing the
		// group, Output would wait for it.
		_, err := Plain().Output(ctx, "sh", "-c", "sleep 60 & wait")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "deadline") {
			t.Errorf("err = %v, want the context's deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a cancelled command did not return: its children kept it alive")
	}
}

func TestExecRunnerCopiesToTheLog(t *testing.T) {
	var log syncBuffer
	out, err := Exec{Log: &log}.Output(context.Background(), "sh", "-c", "echo to-out; echo to-err >&2")
	if err != nil || string(out) != "to-out\n" {
		t.Fatalf("output = %q, %v", out, err)
	}
	got := log.String()
	for _, want := range []string{"$ sh -c echo to-out; echo to-err >&2\n", "to-out\n", "to-err\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
