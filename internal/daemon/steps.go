package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"banger/internal/api"
	"banger/internal/store"
)

// step is one named unit of an operation: what it does and how to undo it.
// Steps check before they act, so that running one twice is harmless.
type step struct {
	name    string
	message string // progress shown while it runs
	do      func(context.Context) error
	// undo reverses do when a later step fails; nil when there is nothing
	// to reverse (or an earlier step's undo covers it).
	undo func(context.Context) error
	// skip leaves the step out of this run: the request does not need it.
	skip bool
	// background runs the step beside the ones after it. The runner waits
	// for it before the first later step marked join, and before the
	// operation ends.
	background bool
	join       bool
	// kind classifies the step for an observer (the image build log).
	kind string
}

// operation is a named list of steps on one target (a VM or an image).
// Declaring an operation is writing its list; the runner does the rest.
type operation struct {
	name   string // "vm create"
	target string
	steps  []step
	// logs are the files a failure points to.
	logs []string
	// watch, when set, is told when each step begins and ends.
	watch observer
}

// observer follows an operation's steps (the image builder writes them
// into its build log).
type observer interface {
	begin(s *step)
	end(s *step, took time.Duration, err error)
}

// run runs op's steps in order: it logs, times and reports each, keeps its
// undo, and when a step fails undoes every completed step, newest first,
// even when ctx was cancelled. The error is a *StepError naming the failed
// step, with any undo failure joined.
func (d *Daemon) run(ctx context.Context, op operation, progress func(api.Progress)) error {
	r := &runner{op: &op, log: d.log, progress: progress}
	if err := r.steps(ctx); err != nil {
		return r.abort(err)
	}
	return nil
}

// runner is one run of an operation.
type runner struct {
	op       *operation
	log      *slog.Logger
	progress func(api.Progress)
	undos    []*step
	pending  []*background
}

// background is a step running beside the others.
type background struct {
	s      *step
	start  time.Time
	cancel context.CancelFunc
	done   chan error
	took   time.Duration // set before done is sent: the step's own time, not the wait for join
}

func (r *runner) emit(pr api.Progress) {
	if r.progress != nil {
		r.progress(pr)
	}
}

func (r *runner) steps(ctx context.Context) error {
	for i := range r.op.steps {
		s := &r.op.steps[i]
		if s.skip {
			continue
		}
		if s.join {
			if err := r.join(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return r.fail(s, fmt.Errorf("interrupted before %s: %w", s.name, err))
		}
		if s.background {
			r.launch(ctx, s)
			continue
		}
		if err := r.one(ctx, s); err != nil {
			return err
		}
	}
	return r.join()
}

// one runs a step in the foreground.
func (r *runner) one(ctx context.Context, s *step) error {
	start := r.begin(s)
	return r.end(s, start, s.do(ctx))
}

func (r *runner) begin(s *step) time.Time {
	r.emit(api.Progress{Step: s.name, Message: s.message})
	if r.op.watch != nil {
		r.op.watch.begin(s)
	}
	return time.Now()
}

// end logs and reports a finished step and keeps its undo.
func (r *runner) end(s *step, start time.Time, err error) error {
	return r.endTook(s, time.Since(start), err)
}

func (r *runner) endTook(s *step, took time.Duration, err error) error {
	if r.op.watch != nil {
		r.op.watch.end(s, took, err)
	}
	attrs := []any{"op", r.op.name, "target", r.op.target, "step", s.name, "duration_ms", took.Milliseconds(), "duration_us", took.Microseconds()}
	if err != nil {
		r.log.Error("operation step failed", append(attrs, "err", err)...)
		return r.fail(s, err)
	}
	r.log.Info("operation step", append(attrs, "outcome", "ok")...)
	r.emit(api.Progress{Step: s.name, Finished: true, Seconds: took.Seconds()})
	if s.undo != nil {
		r.undos = append(r.undos, s)
	}
	return nil
}

func (r *runner) launch(ctx context.Context, s *step) {
	ctx, cancel := context.WithCancel(ctx)
	b := &background{s: s, start: r.begin(s), cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := s.do(ctx)
		b.took = time.Since(b.start)
		b.done <- err
	}()
	r.pending = append(r.pending, b)
}

// join waits for the background steps and returns the first failure.
func (r *runner) join() error {
	var first error
	for _, b := range r.pending {
		done := <-b.done
		err := r.endTook(b.s, b.took, done)
		b.cancel()
		if first == nil {
			first = err
		}
	}
	r.pending = nil
	return first
}

func (r *runner) fail(s *step, err error) error {
	return &StepError{Op: r.op.name, Target: r.op.target, Step: s.name, Err: err, Logs: r.op.logs}
}

// abort stops the background steps, undoes every completed step and
// returns err with any undo failure attached.
func (r *runner) abort(err error) error {
	for _, b := range r.pending {
		b.cancel()
	}
	_ = r.join()
	if uerr := r.rollback(); uerr != nil {
		return errors.Join(err, fmt.Errorf("cleaning up after the failure: %w (reconcile will retry)", uerr))
	}
	return err
}

// rollback undoes the completed steps in reverse order, with a context
// that ignores the caller's cancellation so an interrupted command still
// cleans up.
func (r *runner) rollback() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for i := len(r.undos) - 1; i >= 0; i-- {
		s := r.undos[i]
		if err := s.undo(ctx); err != nil {
			r.log.Error("undoing step failed", "op", r.op.name, "target", r.op.target, "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("undoing %s: %w", s.name, err))
			continue
		}
		r.log.Info("undid step", "op", r.op.name, "target", r.op.target, "step", s.name)
	}
	r.undos = nil
	return errors.Join(errs...)
}

// StepError is an operation step that failed.
type StepError struct {
	Op, Target, Step string
	Err              error
	Logs             []string
	Hint             string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s %s: step %q: %v", e.Op, e.Target, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// APIError converts the step failure for the client, keeping the code of an
// underlying API error (a failed preflight stays a precondition failure).
func (e *StepError) APIError() *api.Error {
	code := api.CodeInternal
	hint := e.Hint
	var inner *api.Error
	if errors.As(e.Err, &inner) {
		code = inner.Code
		if hint == "" {
			hint = inner.Hint
		}
	} else if errors.Is(e.Err, context.Canceled) {
		code = api.CodeInterrupted
	}
	if diskFull(e.Err) {
		code, hint = api.CodeUnavailable, diskFullHint
	}
	return &api.Error{Code: code, Message: e.Error(), Hint: hint, Logs: e.Logs, Step: e.Step}
}

// diskFullHint is the way out of an operation that failed on a full file
// system; the error names the file it was writing.
const diskFullHint = "the file system holding that file is full: free space there (`df -h` shows it; `banger image prune` and `banger vm rm` free banger's own) and retry; the failed attempt left nothing behind"

// diskFull reports whether err comes from a full file system or database.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, store.ErrFull)
}
