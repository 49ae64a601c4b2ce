package firecracker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"banger/internal/system"
	"banger/internal/testutil"
)

// fakeVMMSpec returns a spec that launches this test binary as a fake VMM
// in mode, and the file its API calls are recorded in.
func fakeVMMSpec(t *testing.T, mode string) (Spec, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := shortDir(t)
	s := testSpec(dir)
	s.Binary = exe
	record := filepath.Join(dir, "calls.jsonl")
	t.Setenv(envFakeVMM, mode)
	t.Setenv(envFakeRecord, record)
	return s, record
}

// testDriver returns a driver with short stop timeouts and its log.
func testDriver(t *testing.T) (*Driver, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	d := New(Deps{
		Log:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		SocketTimeout: 10 * time.Second,
		TermTimeout:   300 * time.Millisecond,
		KillTimeout:   5 * time.Second,
	})
	return d, logs
}

// vmmsServing lists the processes whose command line serves socket.
func vmmsServing(socket string) []int {
	var pids []int
	for _, p := range system.Processes() {
		if servesSocket(p.Args, socket) && system.ProcessAlive(p.PID, 0) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// killAtEnd makes sure no fake VMM for socket survives the test.
func killAtEnd(t *testing.T, socket string) {
	t.Cleanup(func() {
		for _, pid := range vmmsServing(socket) {
			t.Errorf("vmm pid %d still running at the end of the test", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func readCalls(t *testing.T, path string) []apiCall {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []apiCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c apiCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	return calls
}

func wait(t *testing.T, d *Driver, p Process) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := d.Wait(ctx, p)
	if err != nil {
		t.Fatalf("waiting for vmm: %v", err)
	}
	return e
}

func checkProcess(t *testing.T, p Process, s Spec) {
	t.Helper()
	st, err := system.ReadProcStat(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if p.StartTime != st.StartTime || p.Socket != s.Socket || p.ID != s.ID {
		t.Errorf("process %+v, want start time %d, socket %s, id %s", p, st.StartTime, s.Socket, s.ID)
	}
	args, err := cmdline(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if want := VMMArgs(s.Binary, sdkConfig(t, s)); !cmp.Equal(want, args) {
		t.Errorf("vmm command line %q, want %q", args, want)
	}
}

func sdkConfig(t *testing.T, s Spec) sdk.Config {
	t.Helper()
	cfg, err := BuildConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestStartBootsAndCtrlAltDelStops(t *testing.T) {
	s, record := fakeVMMSpec(t, modeOK)
	killAtEnd(t, s.Socket)
	d, logs := testDriver(t)
	p, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	checkProcess(t, p, s)
	// Its own session: a signal to the daemon's session or group misses it.
	if sid, err := unix.Getsid(p.PID); err != nil || sid != p.PID {
		t.Errorf("vmm session id = %d, %v; want its own pid %d", sid, err, p.PID)
	}
	if !d.Alive(p) {
		t.Fatal("vmm not alive after Start")
	}
	if diff := cmp.Diff(wantBootCalls(filepath.Dir(s.Socket)), readCalls(t, record)); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
	if err := d.Shutdown(context.Background(), p, 10*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d.Alive(p) {
		t.Error("vmm alive after Shutdown")
	}
	if e := wait(t, d, p); e != (Exit{Known: true}) {
		t.Errorf("exit %v, want exit status 0", e)
	}
	if _, err := os.Stat(s.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api socket left behind: %v", err)
	}
	console, _ := os.ReadFile(s.ConsoleLogPath())
	for _, want := range []string{"fake vmm: serving", "fake console: guest booted", "reboot: machine restart"} {
		if !strings.Contains(string(console), want) {
			t.Errorf("console.log lacks %q:\n%s", want, console)
		}
	}
	for _, want := range []string{"vmm started", "sending ctrl-alt-del", "vmm stopped after ctrl-alt-del"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs.String(), "SIGTERM") {
		t.Errorf("escalated although ctrl-alt-del worked:\n%s", logs)
	}
	calls := readCalls(t, record)
	if last := calls[len(calls)-1]; !cmp.Equal(last.Body, map[string]any{"action_type": "SendCtrlAltDel"}) {
		t.Errorf("last api call %+v, want SendCtrlAltDel", last)
	}
}

// A guest still booting may miss the first ctrl-alt-del (on QEMU an ACPI
// power-button press that only a running systemd-logind acts on): Shutdown
// repeats it and the guest powers off without SIGTERM.
func TestShutdownRepeatsCtrlAltDel(t *testing.T) {
	s, record := fakeVMMSpec(t, modeMissCAD)
	killAtEnd(t, s.Socket)
	d, logs := testDriver(t)
	p, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.Shutdown(context.Background(), p, 30*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if e := wait(t, d, p); e != (Exit{Known: true, Code: 0}) {
		t.Errorf("exit %v, want a clean power-off", e)
	}
	if !strings.Contains(logs.String(), "vmm stopped after ctrl-alt-del") || strings.Contains(logs.String(), "SIGTERM") {
		t.Errorf("shutdown of a guest that missed the first request:\n%s", logs)
	}
	presses := 0
	for _, c := range readCalls(t, record) {
		if cmp.Equal(c.Body, map[string]any{"action_type": "SendCtrlAltDel"}) {
			presses++
		}
	}
	if presses != 2 {
		t.Errorf("sent ctrl-alt-del %d times, want 2", presses)
	}
}

func TestShutdownEscalates(t *testing.T) {
	tests := []struct {
		mode       string
		wantLog    []string
		notLog     string
		wantSignal syscall.Signal
	}{{
		mode:       modeIgnoreCAD,
		wantLog:    []string{"sending ctrl-alt-del", "sending SIGTERM", "vmm stopped after SIGTERM"},
		notLog:     "SIGKILL",
		wantSignal: syscall.SIGTERM,
	}, {
		mode:       modeIgnoreTerm,
		wantLog:    []string{"sending ctrl-alt-del", "sending SIGTERM", "sending SIGKILL", "vmm killed"},
		wantSignal: syscall.SIGKILL,
	}}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s, _ := fakeVMMSpec(t, tt.mode)
			killAtEnd(t, s.Socket)
			d, logs := testDriver(t)
			p, err := d.Start(context.Background(), s)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			// The VMM is gone either way; the caller learns that it
			// took a signal.
			if err := d.Shutdown(context.Background(), p, 200*time.Millisecond); !errors.Is(err, ErrForcedStop) {
				t.Fatalf("Shutdown = %v, want ErrForcedStop", err)
			}
			if e := wait(t, d, p); e != (Exit{Known: true, Code: -1, Signal: tt.wantSignal}) {
				t.Errorf("exit %v, want killed by %v", e, tt.wantSignal)
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if tt.notLog != "" && strings.Contains(logs.String(), tt.notLog) {
				t.Errorf("log has %q:\n%s", tt.notLog, logs)
			}
			if !strings.Contains(logs.String(), "pid="+strconv.Itoa(p.PID)) || !strings.Contains(logs.String(), "vm="+s.ID) {
				t.Errorf("stop stages not logged with vm and pid:\n%s", logs)
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		mode    string
		want    []string
		console string
	}{{
		mode:    modeExitEarly,
		want:    []string{"vmm exited before its api socket", "exit status 3", "console.log"},
		console: "cannot open /dev/kvm",
	}, {
		mode: modeNoSocket,
		want: []string{"not ready after 300ms", "console.log"},
	}, {
		mode: modeFailDrive,
		want: []string{"configuring vmm for vm 0a1b2c3d", "fake failure for /drives/rootfs", "vmm.log", "console.log"},
	}}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s, _ := fakeVMMSpec(t, tt.mode)
			killAtEnd(t, s.Socket)
			d, _ := testDriver(t)
			d.socketTimeout = 300 * time.Millisecond
			_, err := d.Start(context.Background(), s)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if tt.console != "" {
				console, _ := os.ReadFile(s.ConsoleLogPath())
				if !strings.Contains(string(console), tt.console) {
					t.Errorf("console.log lacks %q:\n%s", tt.console, console)
				}
			}
		})
	}
}

func TestStartRefusesMissingBinary(t *testing.T) {
	s := testSpec(shortDir(t))
	s.Binary = filepath.Join(t.TempDir(), "firecracker")
	_, err := New(Deps{}).Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "finding vmm binary") {
		t.Errorf("Start with a missing binary: %v", err)
	}
	s.Binary = "banger-no-such-vmm"
	_, err = New(Deps{}).Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "banger-vmm-qemu") {
		t.Errorf("Start with an unknown binary does not suggest banger-vmm-qemu: %v", err)
	}
}

func TestStartRefusesMissingFiles(t *testing.T) {
	s, _ := fakeVMMSpec(t, modeOK)
	s.Initrd = filepath.Join(filepath.Dir(s.Socket), "initrd.img")
	if err := os.Remove(s.WorkDrive); err != nil {
		t.Fatal(err)
	}
	_, err := New(Deps{}).Start(context.Background(), s)
	if err == nil {
		t.Fatal("Start succeeded with missing files")
	}
	for _, want := range []string{"checking initrd", "checking work drive", "initrd.img", "work.ext4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(s.ConsoleLogPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("console.log made before the files were checked: %v", err)
	}
}

func TestAdoptAfterDaemonRestart(t *testing.T) {
	s, _ := fakeVMMSpec(t, modeOK)
	killAtEnd(t, s.Socket)
	first, _ := testDriver(t)
	p, err := first.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A new daemon knows only the stored Process.
	d, logs := testDriver(t)
	state, err := d.Adopt(context.Background(), p)
	if err != nil || state != StateRunning {
		t.Fatalf("Adopt = %q, %v; want Running", state, err)
	}
	if !strings.Contains(logs.String(), "vmm adopted") {
		t.Errorf("adoption not logged:\n%s", logs)
	}
	wrong := p
	wrong.StartTime++
	if _, err := d.Adopt(context.Background(), wrong); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Adopt with another start time: %v, want ErrNotRunning", err)
	}
	wrong = p
	wrong.Socket = filepath.Join(filepath.Dir(p.Socket), "other.sock")
	if _, err := d.Adopt(context.Background(), wrong); err == nil || !strings.Contains(err.Error(), "does not serve") {
		t.Errorf("Adopt with another socket: %v", err)
	}

	// The adopting driver did not start the VMM: it watches it by pidfd.
	exited := make(chan Exit, 1)
	go func() { exited <- wait(t, d, p) }()
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exited:
		if e.Known {
			t.Errorf("adopted vmm's exit %v claims a known status", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not notice the vmm's death")
	}
	if d.Alive(p) {
		t.Error("Alive after the vmm was killed")
	}
	if _, err := d.Adopt(context.Background(), p); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Adopt of a dead vmm: %v, want ErrNotRunning", err)
	}
	if err := d.Shutdown(context.Background(), p, time.Second); err != nil {
		t.Errorf("Shutdown of a dead vmm: %v", err)
	}
}

func TestAnotherUsersVMMIsRefusedWithTheReason(t *testing.T) {
	s, _ := fakeVMMSpec(t, modeIgnoreTerm)
	killAtEnd(t, s.Socket)
	first, _ := testDriver(t)
	p, err := first.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A daemon of another user (or one that pretends the VMM is root's):
	// the socket is not its own and signals are refused.
	d, _ := testDriver(t)
	d.uid = os.Geteuid() + 4242
	d.signal = func(int, uint64, syscall.Signal) error { return syscall.EPERM }
	if _, err := d.Adopt(context.Background(), p); err == nil || !strings.Contains(err.Error(), "stop it as that user") {
		t.Errorf("Adopt of another user's vmm: %v, want an error naming the owner", err)
	}
	if err := d.Kill(context.Background(), p); err == nil || !strings.Contains(err.Error(), "runs as another user") {
		t.Errorf("Kill of another user's vmm: %v, want an error naming the owner", err)
	}
	if !d.Alive(p) {
		t.Fatal("refused Kill still killed the vmm")
	}
	if err := first.Kill(context.Background(), p); err != nil {
		t.Fatalf("Kill by the owner: %v", err)
	}
	if e := wait(t, first, p); e.Signal != syscall.SIGKILL {
		t.Errorf("exit %v, want killed by SIGKILL", e)
	}
}

func TestGoneProcess(t *testing.T) {
	d, _ := testDriver(t)
	gone := Process{ID: "x", PID: 0}
	if d.Alive(gone) {
		t.Error("pid 0 alive")
	}
	if err := d.Kill(context.Background(), gone); err != nil {
		t.Errorf("Kill of a gone process: %v", err)
	}
	if err := d.Shutdown(context.Background(), gone, time.Second); err != nil {
		t.Errorf("Shutdown of a gone process: %v", err)
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
