package vm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Binary size units.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// ParseSize parses a size such as "512M", "8G", "1.5GiB" or "1073741824"
// into bytes. Suffixes are binary (K, M, G, T, with optional "i" and "B");
// a bare number is bytes.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("invalid size %q: empty (use a number with K, M, G or T, e.g. 8G)", s)
	}
	upper := strings.ToUpper(in)
	upper = strings.TrimSuffix(upper, "B")
	upper = strings.TrimSuffix(upper, "I")
	mult := int64(1)
	if n := len(upper); n > 0 {
		switch upper[n-1] {
		case 'K':
			mult = KiB
		case 'M':
			mult = MiB
		case 'G':
			mult = GiB
		case 'T':
			mult = TiB
		}
		if mult != 1 {
			upper = upper[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(upper), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: use a number with K, M, G or T, e.g. 512M or 8G", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("invalid size %q: must be greater than zero", s)
	}
	b := f * float64(mult)
	if b > float64(math.MaxInt64/2) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if b < 1 {
		return 0, fmt.Errorf("invalid size %q: less than one byte (use K, M, G or T, e.g. 512M)", s)
	}
	return int64(b), nil
}

// FormatSize renders bytes with a binary suffix, e.g. 8G or 1.5G.
func FormatSize(b int64) string {
	units := []struct {
		suffix string
		size   int64
	}{{"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}}
	for _, u := range units {
		if b >= u.size {
			v := float64(b) / float64(u.size)
			if v == math.Trunc(v) {
				return fmt.Sprintf("%d%s", int64(v), u.suffix)
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + u.suffix
		}
	}
	return fmt.Sprintf("%dB", b)
}

// Limits bound the resources one VM may ask for.
type Limits struct {
	MaxCPUs      int
	MinMemoryMiB int
	MaxMemoryMiB int
	MinDiskBytes int64
	MaxDiskBytes int64
}

// DefaultLimits are generous bounds that still catch typos such as 8T.
var DefaultLimits = Limits{MaxCPUs: 32, MinMemoryMiB: 128, MaxMemoryMiB: 256 * 1024, MinDiskBytes: 16 * MiB, MaxDiskBytes: 16 * TiB}

// Check validates requested resources against the limits.
func (l Limits) Check(cpus, memMiB int, disk int64) error {
	switch {
	case cpus < 1 || cpus > l.MaxCPUs:
		return fmt.Errorf("invalid cpu count %d: use 1 to %d", cpus, l.MaxCPUs)
	case memMiB < l.MinMemoryMiB || memMiB > l.MaxMemoryMiB:
		return fmt.Errorf("invalid memory %s: use %s to %s", FormatSize(int64(memMiB)*MiB), FormatSize(int64(l.MinMemoryMiB)*MiB), FormatSize(int64(l.MaxMemoryMiB)*MiB))
	case disk < l.MinDiskBytes || disk > l.MaxDiskBytes:
		return fmt.Errorf("invalid disk size %s: use %s to %s", FormatSize(disk), FormatSize(l.MinDiskBytes), FormatSize(l.MaxDiskBytes))
	}
	return nil
}
