package testutil

import (
	"net"
	"os/exec"
	"testing"
)

func TestInNetnsIsolatesLinks(t *testing.T) {
	if !InNetns(t) {
		return
	}
	// A bridge made here must not be visible outside; inside, the only
	// other link is loopback.
	if out, err := exec.Command("ip", "link", "add", "bangertest0", "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("adding dummy link: %v: %s", err, out)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	if len(ifs) != 2 {
		t.Errorf("interfaces in fresh netns = %v, want lo and bangertest0", names)
	}
}
