package imagebuild

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(step); return t }
}

func TestLogRecordsStepsCommandsAndOutput(t *testing.T) {
	var buf bytes.Buffer
	var progress []string
	l := NewLog(&buf, fakeClock(time.Second), func(step, msg string) { progress = append(progress, step+": "+msg) })
	l.Begin("packages", KindPackages, "installing 2 packages")
	l.Command("apt-get install -y\nhello")
	w := l.Output("packages")
	fmt.Fprint(w, "Reading package lists...\nSetting up hel")
	fmt.Fprint(w, "lo (2.10-3) ...\r\n\nlast line without newline")
	w.Close()
	l.End("packages", KindPackages, 1500*time.Millisecond, nil)
	l.End("run-1", KindScripts, 250*time.Millisecond, errors.New("exit 1\nwith detail"))

	got := buf.String()
	for _, want := range []string{
		"begin step=packages kind=packages: installing 2 packages\n",
		"$ apt-get install -y ⏎ hello\n",
		"| Reading package lists...\n",
		"| Setting up hello (2.10-3) ...\n",
		"| last line without newline\n",
		"end step=packages kind=packages seconds=1.500 ok\n",
		"end step=run-1 kind=scripts seconds=0.250 error: exit 1 ⏎ with detail\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "    +1.000s ") {
		t.Errorf("lines are not stamped with the time since the start:\n%s", got)
	}
	wantProgress := []string{"packages: Reading package lists...", "packages: Setting up hello (2.10-3) ...", "packages: last line without newline"}
	if diff := cmp.Diff(wantProgress, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

func TestParseTimingsAndSummarize(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(&buf, fakeClock(time.Millisecond), nil)
	for _, s := range []struct {
		step, kind string
		secs       float64
	}{
		{"vm/clone", KindBuilder, 0.2},
		{"vm/boot", KindBoot, 0.3},
		{"vm", KindBuilder, 0.6},
		{"connect", KindBoot, 12},
		{"copy-1", KindBuilder, 0.1},
		{"packages", KindPackages, 20},
		{"run-1", KindScripts, 1},
		{"shutdown", KindShutdown, 3},
		{"commit", KindBuilder, 0.5},
		{"build", KindTotal, 37.5},
	} {
		l.End(s.step, s.kind, time.Duration(s.secs*float64(time.Second)), nil)
	}
	l.Printf("end of the build") // free text is ignored
	ts, err := ParseTimings(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 10 || ts[3] != (Timing{Step: "connect", Kind: KindBoot, Seconds: 12, OK: true}) {
		t.Errorf("timings = %+v", ts)
	}
	b, err := Summarize(ts)
	if err != nil {
		t.Fatal(err)
	}
	want := Breakdown{Total: 37.5, ByKind: map[string]float64{KindBoot: 12.3, KindPackages: 20, KindScripts: 1, KindShutdown: 3}, Overhead: 1.2}
	if diff := cmp.Diff(want, b, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("breakdown (-want +got):\n%s", diff)
	}
	if _, err := Summarize(ts[:9]); err == nil {
		t.Error("a log without a total was summarized")
	}
	if _, err := ParseTimings([]byte("   +1.000s end step=x kind=builder seconds=abc ok\n")); err == nil {
		t.Error("a bad duration parsed")
	}
}
