package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
)

// bound reports whether something listens on the TCP address.
func bound(t *testing.T, addr string) bool {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	l.Close()
	return false
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestForwardsFollowTheVM: a forward listens while its VM runs, stops with
// it, comes back with a start and after a daemon restart, and a port in use
// is refused without being recorded.
func TestForwardsFollowTheVM(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	c := inst.Client
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	v, err := c.Forwards(ctx, "dev", api.ForwardsRequest{Add: []string{fmt.Sprintf("%d:80", port)}})
	if err != nil || len(v.Forwards) != 1 || !bound(t, addr) {
		t.Fatalf("forward on a running vm = %+v, %v; listening %v", v.Forwards, err, bound(t, addr))
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = c.Forwards(ctx, "dev", api.ForwardsRequest{Add: []string{fmt.Sprintf("%d:81", taken.Addr().(*net.TCPAddr).Port)}})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("forwarding a port in use: %v", err)
	}
	if got, _ := c.VM(ctx, "dev"); len(got.Forwards) != 1 {
		t.Errorf("a refused forward was recorded: %v", got.Forwards)
	}

	if _, err := c.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	if bound(t, addr) {
		t.Error("the forward still listens after the vm stopped")
	}
	if _, err := c.StartVM(ctx, "dev", false, nil); err != nil {
		t.Fatal(err)
	}
	if !bound(t, addr) {
		t.Error("the forward did not come back with the vm")
	}

	inst.Stop()
	if bound(t, addr) {
		t.Error("the forward outlived its daemon")
	}
	next := daemontest.Serve(t, daemon.Config{Loaded: mustLoad(t, inst), Version: "test2"}, inst.Host.Layers(), inst.Host)
	if _, err := next.Client.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if !bound(t, addr) {
		t.Error("the forward did not come back after a daemon restart")
	}
	if err := next.Client.RemoveVM(ctx, "dev", api.RemoveVMRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	if bound(t, addr) {
		t.Error("the forward outlived its vm")
	}
}
