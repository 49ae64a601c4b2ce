package imagebuild

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Step kinds, recorded with every step's timing so that a build's time can
// be split into the builder's own overhead and the work it waits for.
const (
	// KindBuilder is banger's own work: disks, TAP, uploads, commit.
	KindBuilder = "builder"
	// KindBoot is the guest booting: VMM start to SSH answering.
	KindBoot = "boot"
	// KindPackages is the guest's package manager at work.
	KindPackages = "packages"
	// KindScripts is the user's --run scripts.
	KindScripts = "scripts"
	// KindShutdown is the guest powering off.
	KindShutdown = "shutdown"
	// KindTotal marks the line with the whole build's duration.
	KindTotal = "total"
)

// Log is one build's log: every step with its kind and duration, every
// guest command and its output, each line stamped with the time since the
// build started. Lines worth showing live also go to progress.
type Log struct {
	mu       sync.Mutex
	w        io.Writer
	start    time.Time
	now      func() time.Time
	progress func(step, message string)
}

// NewLog writes a build log to w. now may be nil (time.Now); progress may
// be nil.
func NewLog(w io.Writer, now func() time.Time, progress func(step, message string)) *Log {
	if now == nil {
		now = time.Now
	}
	if progress == nil {
		progress = func(string, string) {}
	}
	l := &Log{w: w, now: now, progress: progress}
	l.start = now()
	return l
}

func (l *Log) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%+10.3fs %s\n", l.now().Sub(l.start).Seconds(), s)
}

// Printf logs a free-form line.
func (l *Log) Printf(format string, args ...any) { l.line(fmt.Sprintf(format, args...)) }

// Begin logs the start of a step.
func (l *Log) Begin(step, kind, message string) {
	l.line(fmt.Sprintf("begin step=%s kind=%s: %s", step, kind, message))
}

// End logs the end of a step with its duration and outcome.
func (l *Log) End(step, kind string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error: " + oneLine(err.Error())
	}
	l.line(fmt.Sprintf("end step=%s kind=%s seconds=%.3f %s", step, kind, d.Seconds(), outcome))
}

// Command logs a guest command line about to run.
func (l *Log) Command(line string) { l.line("$ " + oneLine(line)) }

// Output returns a writer that logs what is written to it line by line,
// prefixed with "| ", and reports each line as progress of step. Close it
// to flush a last unterminated line.
func (l *Log) Output(step string) io.WriteCloser { return &lineWriter{l: l, step: step} }

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ⏎ ") }

type lineWriter struct {
	mu   sync.Mutex
	l    *Log
	step string
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexAny(w.buf, "\r\n")
		if i < 0 {
			break
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line without a newline
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) emit(s string) {
	s = strings.TrimRight(s, " \t")
	if s == "" {
		return
	}
	w.l.line("| " + s)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	w.l.progress(w.step, s)
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return nil
}

// Timing is one finished step read back from a build log.
type Timing struct {
	Step    string
	Kind    string
	Seconds float64
	OK      bool
}

// ParseTimings returns the finished steps recorded in a build log, in the
// order they ended.
func ParseTimings(log []byte) ([]Timing, error) {
	var out []Timing
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "end" || !strings.HasPrefix(f[2], "step=") {
			continue
		}
		t := Timing{Step: strings.TrimPrefix(f[2], "step="), Kind: strings.TrimPrefix(f[3], "kind="), OK: f[5] == "ok"}
		secs, err := strconv.ParseFloat(strings.TrimPrefix(f[4], "seconds="), 64)
		if err != nil || !strings.HasPrefix(f[4], "seconds=") {
			return nil, fmt.Errorf("build log line %d: bad duration %q", n, f[4])
		}
		t.Seconds = secs
		out = append(out, t)
	}
	return out, sc.Err()
}

// Breakdown splits a build's time by kind.
type Breakdown struct {
	Total float64
	// ByKind sums the steps of each kind other than builder and total.
	ByKind map[string]float64
	// Overhead is what the builder itself spent: the total minus the
	// guest's boot, package manager, scripts and shutdown.
	Overhead float64
}

// Summarize computes the breakdown of a build from its timings. Steps of a
// waiting kind are never nested in each other, so their sum is the time
// spent waiting.
func Summarize(ts []Timing) (Breakdown, error) {
	b := Breakdown{ByKind: map[string]float64{}}
	found := false
	for _, t := range ts {
		switch t.Kind {
		case KindTotal:
			b.Total, found = t.Seconds, true
		case KindBuilder:
		default:
			b.ByKind[t.Kind] += t.Seconds
		}
	}
	if !found {
		return b, fmt.Errorf("build log has no total (did the build finish?)")
	}
	b.Overhead = b.Total
	for _, s := range b.ByKind {
		b.Overhead -= s
	}
	return b, nil
}
