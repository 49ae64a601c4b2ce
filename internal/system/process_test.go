package system

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartProcessExitCodeAndOutput(t *testing.T) {
	var out bytes.Buffer
	p, err := StartProcess(ProcessSpec{
		Argv:   []string{"sh", "-c", `echo "$BANGER_X"; exit 3`},
		Env:    []string{"BANGER_X=hello"},
		Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 || st.Signal != 0 || st.Success() {
		t.Errorf("status = %+v, want exit code 3", st)
	}
	if got := strings.TrimSpace(out.String()); got != "hello" {
		t.Errorf("stdout = %q, want hello", got)
	}
}

func TestStartProcessSignal(t *testing.T) {
	p, err := StartProcess(ProcessSpec{Argv: []string{"sleep", "30"}, NewSession: true, DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Field 6 of /proc/PID/stat is the session id.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	sid, _ := strconv.Atoi(f[3])
	if sid != p.PID() {
		t.Errorf("session of child = %d, want its own pid %d", sid, p.PID())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Signal != syscall.SIGTERM || st.String() != "killed by terminated" {
		t.Errorf("status = %+v (%s), want killed by SIGTERM", st, st)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal after exit = %v, want ErrProcessDone", err)
	}
}

func TestStartProcessMissingProgram(t *testing.T) {
	_, err := StartProcess(ProcessSpec{Argv: []string{"/nonexistent/banger-no-such-program"}})
	var ce *CommandError
	if !errors.As(err, &ce) || !IsNotFound(err) {
		t.Errorf("err = %v, want a not-found CommandError", err)
	}
	if _, err := StartProcess(ProcessSpec{}); err == nil {
		t.Error("empty argv: want error")
	}
}
