package privhelper

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/allocation"
	"banger/internal/system"
)

func TestHelperArgv(t *testing.T) {
	fake := &system.Fake{}
	h := NewHelper(allocation.Default(), "", fake)
	ctx := context.Background()
	mac := net.HardwareAddr{0x06, 0xaa, 0, 0, 0, 1}
	must(t, h.CheckSetup(ctx))
	must(t, h.BridgeUp(ctx))
	must(t, h.NATUp(ctx))
	must(t, h.TAPAdd(ctx, "bg1-dev", mac))
	must(t, h.TAPDel(ctx, "bg1-dev"))
	must(t, h.DNSUp(ctx))
	must(t, h.DNSDown(ctx))
	must(t, h.NATDown(ctx))
	must(t, h.BridgeDown(ctx))
	want := []string{
		"sudo -n -- /usr/local/libexec/banger/banger-helper check",
		"sudo -n -- /usr/local/libexec/banger/banger-helper bridge up",
		"sudo -n -- /usr/local/libexec/banger/banger-helper nat up",
		"sudo -n -- /usr/local/libexec/banger/banger-helper tap add bg1-dev 06:aa:00:00:00:01",
		"sudo -n -- /usr/local/libexec/banger/banger-helper tap del bg1-dev",
		"sudo -n -- /usr/local/libexec/banger/banger-helper dns up",
		"sudo -n -- /usr/local/libexec/banger/banger-helper dns down",
		"sudo -n -- /usr/local/libexec/banger/banger-helper nat down",
		"sudo -n -- /usr/local/libexec/banger/banger-helper bridge down",
	}
	if diff := cmp.Diff(want, fake.CallLines()); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	// What the client sends, the helper parses back to the same request.
	for _, argv := range fake.Calls() {
		req, err := Parse(argv[4:])
		if err != nil || !cmp.Equal(req.Argv(), argv[4:]) {
			t.Errorf("helper would not take %q: %+v, %v", argv, req, err)
		}
	}
}

func TestHelperErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		is      error
		message string
	}{
		{"refusal", &system.CommandError{ExitCode: 2, Stderr: "banger-helper: refused: tap del bg2-x: want \"bg1-\"\n", Err: errors.New("exit status 2")},
			ErrRefused, `want "bg1-"`},
		{"no sudoers rule", &system.CommandError{ExitCode: 1, Stderr: "sudo: a password is required\n", Err: errors.New("exit status 1")},
			ErrNoSudo, "sudo banger system setup"},
		{"helper not installed", &system.CommandError{ExitCode: 1, Stderr: "sudo: /usr/local/libexec/banger/banger-helper: command not found\n", Err: errors.New("exit status 1")},
			ErrNoSudo, "sudo banger system setup"},
		{"failure", &system.CommandError{ExitCode: 1, Stderr: "banger-helper: ensuring bridge: boom\n", Err: errors.New("exit status 1")},
			nil, "bridge up: banger-helper: ensuring bridge: boom"},
		{"failure after a sudo warning", &system.CommandError{ExitCode: 1, Stderr: "sudo: unable to resolve host box: Name or service not known\nbanger-helper: ensuring bridge: boom\n", Err: errors.New("exit status 1")},
			nil, "banger-helper: ensuring bridge: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &system.Fake{Handler: func([]string, []byte) ([]byte, error) { return nil, tt.err }}
			err := NewHelper(allocation.Default(), "", fake).BridgeUp(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("err = %v, want one saying %q", err, tt.message)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			if tt.is == nil && (errors.Is(err, ErrNoSudo) || errors.Is(err, ErrRefused)) {
				t.Errorf("err = %v: a failure of the helper taken for a refusal or a missing sudo rule", err)
			}
		})
	}
}

func TestForPicksByUID(t *testing.T) {
	a := allocation.Default()
	p, err := For(a, 0, "", nil)
	if _, ok := p.(*Direct); err != nil || !ok {
		t.Errorf("For(root) = %T, %v; want *Direct", p, err)
	}
	p, err = For(a, 1001, "/opt/h", nil)
	h, ok := p.(*Helper)
	if err != nil || !ok || h.Argv(Request{Verb: NATUp})[3] != "/opt/h" {
		t.Errorf("For(user) = %#v, %v; want *Helper with the given path", p, err)
	}
}

func TestDirectDNS(t *testing.T) {
	w := newWorld(t)
	fake := &system.Fake{}
	deps := w.deps().Direct
	deps.Runner = &firewallAndResolved{fw: w.fw, resolved: fake}
	deps.LookPath = func(name string) (string, error) {
		if name == "resolvectl" {
			return "/usr/bin/resolvectl", nil
		}
		return w.fw.LookPath(name)
	}
	d, err := NewDirect(w.alice, deps)
	must(t, err)
	ctx := context.Background()
	if err := d.DNSUp(ctx); err == nil || !strings.Contains(err.Error(), "bring the bridge up first") {
		t.Errorf("DNSUp without the bridge: err = %v", err)
	}
	must(t, d.DNSDown(ctx)) // nothing to revert
	must(t, d.BridgeUp(ctx))
	must(t, d.DNSUp(ctx))
	must(t, d.DNSDown(ctx))
	want := []string{
		"/usr/bin/resolvectl dns banger1 10.213.1.1:42103",
		"/usr/bin/resolvectl domain banger1 ~alice.vm ~1.213.10.in-addr.arpa",
		"/usr/bin/resolvectl default-route banger1 false",
		"/usr/bin/resolvectl dnssec banger1 no",
		"/usr/bin/resolvectl dnsovertls banger1 no",
		"/usr/bin/resolvectl revert banger1",
	}
	if diff := cmp.Diff(want, fake.CallLines()); diff != "" {
		t.Errorf("resolvectl calls (-want +got):\n%s", diff)
	}
}

// firewallAndResolved sends resolvectl to one runner, the rest to the fake
// firewall.
type firewallAndResolved struct {
	fw       system.InputRunner
	resolved *system.Fake
}

func (r *firewallAndResolved) pick(argv []string) system.InputRunner {
	if strings.HasSuffix(argv[0], "resolvectl") {
		return r.resolved
	}
	return r.fw
}

func (r *firewallAndResolved) Run(ctx context.Context, argv ...string) error {
	return r.pick(argv).Run(ctx, argv...)
}

func (r *firewallAndResolved) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return r.pick(argv).Output(ctx, argv...)
}

func (r *firewallAndResolved) RunInput(ctx context.Context, in io.Reader, argv ...string) ([]byte, error) {
	return r.pick(argv).RunInput(ctx, in, argv...)
}
