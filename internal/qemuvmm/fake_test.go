package qemuvmm

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/system"
)

// fakeProc is a QEMU process that exits when told to or when signalled.
type fakeProc struct {
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	status  system.ExitStatus
	signals []os.Signal
}

func newFakeProc() *fakeProc { return &fakeProc{done: make(chan struct{})} }

func (p *fakeProc) PID() int              { return 4242 }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Wait() (system.ExitStatus, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}
func (p *fakeProc) Signal(s os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, s)
	p.mu.Unlock()
	// QEMU exits 0 on SIGTERM ("terminating on signal 15").
	p.exit(system.ExitStatus{Code: 0})
	return nil
}
func (p *fakeProc) exit(st system.ExitStatus) {
	p.once.Do(func() {
		p.mu.Lock()
		p.status = st
		p.mu.Unlock()
		close(p.done)
	})
}

// fakeQMP records commands and can emit events.
type fakeQMP struct {
	mu     sync.Mutex
	cmds   []string
	args   []any
	events chan QMPEvent
	fail   map[string]error
	// on answers a command instead of the default "{}".
	on map[string]func(args any) (json.RawMessage, error)
}

func (q *fakeQMP) Execute(_ context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cmds = append(q.cmds, cmd)
	q.args = append(q.args, args)
	if err := q.fail[cmd]; err != nil {
		return nil, err
	}
	if f := q.on[cmd]; f != nil {
		return f(args)
	}
	return json.RawMessage("{}"), nil
}
func (q *fakeQMP) Events() <-chan QMPEvent { return q.events }
func (q *fakeQMP) Close() error            { return nil }
func (q *fakeQMP) commands() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.cmds...)
}

// harness is a VMM over fakes, driven through its HTTP handler.
type harness struct {
	t      testing.TB
	v      *VMM
	dir    string
	proc   *fakeProc
	qmp    *fakeQMP
	mu     sync.Mutex
	specs  []system.ProcessSpec
	startE error
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), proc: newFakeProc(), qmp: &fakeQMP{events: make(chan QMPEvent, 8)}}
	deps := Deps{
		Start: func(spec system.ProcessSpec) (Proc, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.specs = append(h.specs, spec)
			if h.startE != nil {
				return nil, h.startE
			}
			return h.proc, nil
		},
		DialQMP: func(ctx context.Context, path string) (Controller, error) { return h.qmp, nil },
		HostFacts: func(context.Context) HostFacts {
			return HostFacts{Modules: map[string]bool{"kvm_pvm": true}, KernelLog: []byte("tsc: Detected 2596.138 MHz processor\n")}
		},
		Now: time.Now,
	}
	h.v = New(Config{APISock: h.dir + "/api.sock", ID: "vm1", QEMU: "qemu-system-x86_64"}, deps)
	h.v.probeAccel(context.Background())
	t.Cleanup(func() {
		h.proc.exit(system.ExitStatus{})
		h.qmp.mu.Lock()
		defer h.qmp.mu.Unlock()
		select {
		case <-h.qmp.events:
		default:
		}
	})
	return h
}

// file makes a file of size bytes in the harness dir and returns its path.
func (h *harness) file(name string, size int64) string {
	h.t.Helper()
	p := h.dir + "/" + name
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// do sends a request and returns status and body.
func (h *harness) do(method, path, body string) (int, string) {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.v.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// must sends a request and fails the test unless it gets want.
func (h *harness) must(want int, method, path, body string) string {
	h.t.Helper()
	code, got := h.do(method, path, body)
	if code != want {
		h.t.Fatalf("%s %s %s: status %d (%s), want %d", method, path, body, code, got, want)
	}
	return got
}

// configure sets up a bootable VM: kernel, initrd, root and data drive, NIC.
func (h *harness) configure() {
	h.t.Helper()
	kernel, initrd := h.file("vmlinuz", 10), h.file("initrd", 10)
	h.must(204, "PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":512,"smt":false}`)
	h.must(204, "PUT", "/boot-source", `{"kernel_image_path":"`+kernel+`","initrd_path":"`+initrd+`","boot_args":"console=ttyS0 reboot=k panic=1"}`)
	h.must(204, "PUT", "/drives/work", `{"drive_id":"work","path_on_host":"`+h.file("work.ext4", 1<<20)+`","is_root_device":false,"is_read_only":false}`)
	h.must(204, "PUT", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"`+h.file("root.ext4", 1<<20)+`","is_root_device":true,"is_read_only":false}`)
	h.must(204, "PUT", "/network-interfaces/1", `{"iface_id":"1","guest_mac":"06:00:ac:10:00:02","host_dev_name":"tap-vm1"}`)
}

func (h *harness) start() {
	h.t.Helper()
	h.must(204, "PUT", "/actions", `{"action_type":"InstanceStart"}`)
	select {
	case <-h.v.qmpReady:
	case <-time.After(5 * time.Second):
		h.t.Fatal("qmp never became ready")
	}
}

func (h *harness) spec() system.ProcessSpec {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.specs) != 1 {
		h.t.Fatalf("qemu started %d times, want 1", len(h.specs))
	}
	return h.specs[0]
}
