package nat

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Up records that forwarding was off; RestoreForward turns it off again
// once and forgets the record. With forwarding on before banger, nothing
// is recorded and nothing restored.
func TestIPForwardIsRestoredToItsValueBeforeBanger(t *testing.T) {
	ctx := context.Background()
	for _, before := range []bool{false, true} {
		fw := NewFakeFirewall(NFT)
		if before {
			if _, err := fw.Output(ctx, "sysctl", "-w", "net.ipv4.ip_forward=1"); err != nil {
				t.Fatal(err)
			}
		}
		record := filepath.Join(t.TempDir(), "ip_forward.net-1")
		deps := Deps{Runner: fw, LookPath: fw.LookPath, ReadFile: fw.ReadFile, ForwardRecord: record}
		n, err := New(Config{}, deps)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if !fw.IPForward() {
			t.Fatal("Up left ip_forward off")
		}
		if _, err := os.Stat(record); (err == nil) == before {
			t.Errorf("forwarding on before banger = %v, but the record exists = %v", before, err == nil)
		}
		if err := n.Down(ctx); err != nil {
			t.Fatal(err)
		}
		changed, err := RestoreForward(ctx, deps, record)
		if err != nil {
			t.Fatal(err)
		}
		if changed == before || fw.IPForward() != before {
			t.Errorf("before = %v: restore changed = %v, ip_forward now %v", before, changed, fw.IPForward())
		}
		if _, err := os.Stat(record); err == nil {
			t.Error("the record is left after the restore")
		}
		if changed, err := RestoreForward(ctx, deps, record); changed || err != nil {
			t.Errorf("a second restore: changed %v, %v", changed, err)
		}
	}
}
