package vm

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "dev", "web-1", "0", strings.Repeat("a", 63)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		strings.Repeat("a", 64): "at most 63",
		"-dev":                  "starts or ends",
		"dev-":                  "starts or ends",
		"Dev":                   `try "dev"`,
		"My_vm":                 "'M'",
		"my_vm":                 "'_'",
		"dev.vm":                "'.'",
	}
	for n, want := range bad {
		err := ValidateName(n)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want error containing %q", n, err, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{
		"1":      1,
		"512M":   512 * MiB,
		"512MiB": 512 * MiB,
		"8G":     8 * GiB,
		"8g":     8 * GiB,
		"1.5G":   GiB + GiB/2,
		"2T":     2 * TiB,
		"4k":     4 * KiB,
		"16GB":   16 * GiB,
	}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "0", "abc", "8X", "1e400", "NaN"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want error", in)
		}
	}
}

func TestFormatSizeRoundTrip(t *testing.T) {
	for _, b := range []int64{512 * MiB, 8 * GiB, GiB + GiB/2, 3 * TiB, 4 * KiB} {
		s := FormatSize(b)
		got, err := ParseSize(s)
		if err != nil || got != b {
			t.Errorf("ParseSize(FormatSize(%d)=%q) = %d, %v", b, s, got, err)
		}
	}
	if got := FormatSize(100); got != "100B" {
		t.Errorf("FormatSize(100) = %q", got)
	}
}

func TestTransitions(t *testing.T) {
	allowed := [][2]State{
		{Creating, Stopped}, {Creating, Starting}, {Stopped, Starting}, {Starting, Running},
		{Running, Stopping}, {Stopping, Stopped}, {Running, Stopped}, {Error, Stopped}, {Stopping, Running},
	}
	for _, tr := range allowed {
		if err := Transition("dev", tr[0], tr[1]); err != nil {
			t.Errorf("%s -> %s refused: %v", tr[0], tr[1], err)
		}
	}
	refused := [][2]State{{Stopped, Stopping}, {Stopped, Running}, {Running, Starting}, {Creating, Stopping}, {Creating, Running}, {Running, Running}}
	for _, tr := range refused {
		if err := Transition("dev", tr[0], tr[1]); err == nil {
			t.Errorf("%s -> %s allowed, want refused", tr[0], tr[1])
		}
	}
	if State("deleted").Valid() {
		t.Error("unknown state reported valid")
	}
	for _, s := range States() {
		if !s.Valid() {
			t.Errorf("state %s has no row in the transition table", s)
		}
	}
}

func TestOpTable(t *testing.T) {
	for _, op := range Ops() {
		for _, s := range States() {
			noop, err := Check(op, "dev", s)
			var oe *OpError
			if err != nil && !errors.As(err, &oe) {
				t.Errorf("%s in %s: error %v is not an *OpError", op, s, err)
			}
			if noop && err != nil {
				t.Errorf("%s in %s: both nothing to do and refused", op, s)
			}
			if oe != nil && (!strings.Contains(oe.Error(), string(s)) || !strings.Contains(oe.Error(), "dev")) {
				t.Errorf("%s in %s: message %q names neither the vm nor its state", op, s, oe.Error())
			}
		}
	}
	cases := []struct {
		op      Op
		s       State
		noop    bool
		refused bool
	}{
		{OpStart, Stopped, false, false}, {OpStart, Running, true, false}, {OpStart, Stopping, false, true},
		{OpStop, Running, false, false}, {OpStop, Stopped, true, false}, {OpStop, Creating, false, true},
		{OpRemove, Running, false, true}, {OpForceRemove, Running, false, false}, {OpForceRemove, Creating, false, false},
		{OpResize, Running, false, false}, {OpResize, Stopping, false, true}, {OpResize, Stopped, false, false}, {OpCommit, Error, false, true},
	}
	for _, c := range cases {
		noop, err := Check(c.op, "dev", c.s)
		if noop != c.noop || (err != nil) != c.refused {
			t.Errorf("Check(%s, %s) = %v, %v; want noop %v refused %v", c.op, c.s, noop, err, c.noop, c.refused)
		}
	}
	if _, err := Check("fly", "dev", Stopped); err == nil {
		t.Error("unknown operation accepted")
	}
	_, err := Check(OpRemove, "dev", Running)
	var oe *OpError
	if !errors.As(err, &oe) || !strings.Contains(oe.Hint, "banger vm rm --force dev") {
		t.Errorf("rm of a running vm: hint %+v lacks the force command", oe)
	}
}

func TestLimits(t *testing.T) {
	l := DefaultLimits
	if err := l.Check(2, 1024, 8*GiB); err != nil {
		t.Errorf("normal request refused: %v", err)
	}
	if err := l.Check(0, 1024, 8*GiB); err == nil || !strings.Contains(err.Error(), "cpu") {
		t.Errorf("0 cpus: %v", err)
	}
	if err := l.Check(1, 16, 8*GiB); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("16 MiB memory: %v", err)
	}
	if err := l.Check(1, 1024, 100*TiB); err == nil || !strings.Contains(err.Error(), "disk") {
		t.Errorf("100T disk: %v", err)
	}
}
