package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"banger/internal/api"
)

// progress renders a daemon operation's progress: a spinner on a terminal,
// plain lines otherwise (logs, CI, pipes).
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	msg   string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, tty: isTerminal(w), start: time.Now()}
	if p.tty {
		p.stop = make(chan struct{})
		p.done = make(chan struct{})
		go p.spin()
	}
	return p
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *progress) spin() {
	defer close(p.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			p.mu.Lock()
			fmt.Fprint(p.w, "\r\x1b[K")
			p.mu.Unlock()
			return
		case <-t.C:
			p.mu.Lock()
			if p.msg != "" {
				fmt.Fprintf(p.w, "\r\x1b[K%s %s (%.1fs)", spinnerFrames[i%len(spinnerFrames)], p.msg, time.Since(p.start).Seconds())
			}
			p.mu.Unlock()
		}
	}
}

// Update is the callback given to the API client.
func (p *progress) Update(pr api.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Finished {
		return
	}
	msg := pr.Message
	if msg == "" {
		msg = pr.Step
	}
	if pr.Total > 0 {
		msg = fmt.Sprintf("%s %d%%", msg, 100*pr.Done/pr.Total)
	}
	if p.tty {
		p.msg = msg
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", pr.Step, msg)
}

// Done stops the spinner.
func (p *progress) Done() {
	if p.tty {
		close(p.stop)
		<-p.done
	}
}
