package nat

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"banger/internal/network"
	"banger/internal/system"
)

// BenchmarkVMNetworkSetup measures what the daemon does for one VM's
// networking: EnsureBridge, CreateTAP and NAT Up (target: 30 ms). "cold"
// starts with no bridge and no rules, with a fresh NAT that detects the
// backend; "warm" is every later VM: bridge and rules exist, a new TAP is
// made. It changes the host's network, so it only runs inside the throwaway
// namespace bench/network.sh makes, and reports the median as p50-ms.
func BenchmarkVMNetworkSetup(b *testing.B) {
	if os.Getenv("BANGER_BENCH_NETNS") != "1" || os.Geteuid() != 0 {
		b.Skip("run bench/network.sh: needs root and a throwaway network namespace")
	}
	for _, backend := range []Backend{NFT, Legacy, ""} {
		name := string(backend)
		if name == "" {
			name = "detected" // Config.Backend empty: the cold run includes detection
		}
		b.Run("cold/"+name, func(b *testing.B) { benchSetup(b, backend, true) })
		b.Run("warm/"+name, func(b *testing.B) { benchSetup(b, backend, false) })
	}
}

func benchSetup(b *testing.B, backend Backend, cold bool) {
	ctx := context.Background()
	net, err := network.New(network.Config{}, network.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	newNAT := func() *NAT {
		n, err := New(Config{Backend: backend, DNSPort: 42069}, Deps{Runner: system.Privileged()})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	n := newNAT()
	teardown := func() {
		for _, err := range []error{n.Down(ctx), net.DeleteBridge(ctx)} {
			if err != nil {
				b.Fatal(err)
			}
		}
		taps, err := net.ListTAPs(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, tp := range taps {
			if err := net.DeleteTAP(ctx, tp.Name); err != nil {
				b.Fatal(err)
			}
		}
	}
	teardown()
	b.Cleanup(teardown)
	if !cold { // warm: the first VM already set things up
		if err := net.EnsureBridge(ctx); err != nil {
			b.Fatal(err)
		}
		if err := n.Up(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var times []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("b%d", i)
		if cold {
			b.StopTimer()
			teardown()
			n = newNAT()
			b.StartTimer()
		}
		start := time.Now()
		if err := net.EnsureBridge(ctx); err != nil {
			b.Fatal(err)
		}
		if err := net.CreateTAP(ctx, network.TAPName(id), network.TAPMAC(id), 1000); err != nil {
			b.Fatal(err)
		}
		if err := n.Up(ctx); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
}
