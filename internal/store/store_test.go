package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"banger/internal/image"
	"banger/internal/vm"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testImage(name string) *image.Image {
	return &image.Image{ID: "img-" + name, Name: name, Source: image.FromBootstrap, Dir: "/d/" + name,
		Kernel: "/d/k", Initrd: "/d/i", Rootfs: "/d/r", SizeBytes: 2 << 30, CreatedAt: time.Unix(100, 0).UTC()}
}

func testVM(name, imageID string) *vm.VM {
	return &vm.VM{ID: "id-" + name, Name: name, State: vm.Creating, ImageID: imageID, CPUs: 2, MemoryMiB: 1024,
		DiskBytes: 8 << 30, Dir: "/data/" + name, StateDir: "/state/" + name, Socket: "/run/" + name + ".sock",
		CreatedAt: time.Unix(200, 0).UTC()}
}

func TestVMRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := testImage("base")
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	v := testVM("dev", img.ID)
	if err := s.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	v.State = vm.Running
	v.IP, v.MAC, v.TAP = netip.MustParseAddr("172.30.0.2"), "02:00:00:00:00:01", "bg-dev"
	v.Process = vm.Process{PID: 42, StartTime: 777}
	v.StartedAt = time.Unix(300, 0).UTC()
	if err := s.UpdateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	got, err := s.VM(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	want := *v
	want.ImageName = "base"
	want.Layout = vm.Clone // the default
	want.Base = img.Rootfs // read from the image
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("vm round trip (-want +got):\n%s", diff)
	}
	layered := testVM("web", img.ID)
	layered.Layout = vm.Layered
	if err := s.CreateVM(ctx, layered); err != nil {
		t.Fatal(err)
	}
	if got, err := s.VM(ctx, "web"); err != nil || got.Layout != vm.Layered {
		t.Errorf("layered vm read back as %q, %v", got.Layout, err)
	}
	counts, err := s.CountVMs(ctx)
	if err != nil || counts["running"] != 1 {
		t.Errorf("CountVMs = %v, %v", counts, err)
	}
}

func TestConstraints(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := testImage("base")
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateImage(ctx, testImage("base")); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate image: err = %v, want ErrExists", err)
	}
	if err := s.CreateVM(ctx, testVM("dev", img.ID)); err != nil {
		t.Fatal(err)
	}
	dup := testVM("dev", img.ID)
	dup.ID = "other"
	if err := s.CreateVM(ctx, dup); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate vm name: err = %v, want ErrExists", err)
	}
	if err := s.CreateVM(ctx, testVM("orphan", "no-such-image")); !errors.Is(err, ErrInUse) && err == nil {
		t.Errorf("vm with unknown image accepted")
	}
	if err := s.DeleteImage(ctx, img.ID); !errors.Is(err, ErrInUse) {
		t.Errorf("deleting used image: err = %v, want ErrInUse", err)
	}
	if _, err := s.VM(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing vm: err = %v, want ErrNotFound", err)
	}
	a, b := testVM("a", img.ID), testVM("b", img.ID)
	a.IP, b.IP = netip.MustParseAddr("172.30.0.9"), netip.MustParseAddr("172.30.0.9")
	if err := s.CreateVM(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateVM(ctx, b); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate ip: err = %v, want ErrExists", err)
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000"} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.SchemaVersion(ctx); v != len(entries) {
		t.Errorf("schema version = %d, want %d (one per migration)", v, len(entries))
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "banger.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateImage(ctx, testImage("base")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Image(ctx, "base"); err != nil {
		t.Errorf("image lost across reopen: %v", err)
	}
}

func TestCorruptDatabaseIsReportedAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	junk := []byte(strings.Repeat("this is not sqlite ", 512))
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), "move the file aside") || !strings.Contains(err.Error(), path) {
		t.Errorf("error lacks path or fix: %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(junk) {
		t.Error("corrupt database file was modified")
	}
}

func TestLockedDatabaseIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the busy timeout")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "banger.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateImage(ctx, testImage("base")); err != nil {
		t.Fatal(err)
	}
	// Another process-like connection holds the write lock.
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	err = s.CreateImage(ctx, testImage("second"))
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "another bangerd") {
		t.Errorf("write under foreign lock: err = %v, want ErrBusy with a hint", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateImage(ctx, testImage("second")); err != nil {
		t.Errorf("write after lock released: %v", err)
	}
	if _, err := s.Image(ctx, "base"); err != nil {
		t.Errorf("data lost: %v", err)
	}
}

func TestListManyVMs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := testImage("base")
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		v := testVM(fmt.Sprintf("vm-%03d", i), img.ID)
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	vms, err := s.VMs(ctx)
	if err != nil || len(vms) != 300 || vms[0].Name != "vm-000" || vms[299].Name != "vm-299" {
		t.Fatalf("VMs = %d rows, %v", len(vms), err)
	}
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if v, err := s.Setting(ctx, "dns.setup"); err != nil || v != "" {
		t.Fatalf("unset setting = %q, %v", v, err)
	}
	for _, want := range []string{"resolved", "again"} {
		if err := s.SetSetting(ctx, "dns.setup", want); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Setting(ctx, "dns.setup"); err != nil || v != want {
			t.Errorf("setting = %q, %v; want %q", v, err, want)
		}
	}
	if err := s.SetSetting(ctx, "dns.setup", ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Setting(ctx, "dns.setup"); v != "" {
		t.Errorf("removed setting = %q", v)
	}
}

func TestForwardsFollowTheirVM(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	img := testImage("base")
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	v := testVM("dev", img.ID)
	if err := s.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	web := vm.Forward{VMID: v.ID, Proto: "tcp", HostAddr: loop, HostPort: 8080, GuestPort: 80}
	dns := vm.Forward{VMID: v.ID, Proto: "udp", HostAddr: loop, HostPort: 5353, GuestPort: 53}
	for _, f := range []vm.Forward{web, dns} {
		if err := s.AddForward(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddForward(ctx, web); !errors.Is(err, ErrExists) {
		t.Errorf("adding a forward twice: %v, want ErrExists", err)
	}
	got, err := s.Forwards(ctx, v.ID)
	if diff := cmp.Diff([]vm.Forward{web, dns}, got, cmpopts.EquateComparable(netip.Addr{})); err != nil || diff != "" {
		t.Errorf("forwards (%v):\n%s", err, diff)
	}
	if err := s.RemoveForward(ctx, dns); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveForward(ctx, dns); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a forward twice: %v, want ErrNotFound", err)
	}
	if err := s.DeleteVM(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Forwards(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("forwards after the vm went: %v, %v", got, err)
	}
}
