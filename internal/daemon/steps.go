package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"banger/internal/api"
)

// plan runs the ordered steps of one lifecycle operation. Each step may
// register an undo; when a later step fails, the undos run in reverse order
// (with a context that ignores the caller's cancellation, so an interrupted
// command still cleans up) and the error names the failing step.
type plan struct {
	op       string
	vm       string
	log      *slog.Logger
	progress func(api.Progress)
	logs     []string
	undos    []undo
}

type undo struct {
	step string
	fn   func(context.Context) error
}

// StepError is a lifecycle step that failed.
type StepError struct {
	Op, VM, Step string
	Err          error
	Logs         []string
	Hint         string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s %s: step %q: %v", e.Op, e.VM, e.Step, e.Err)
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
	return &api.Error{Code: code, Message: e.Error(), Hint: hint, Logs: e.Logs, Step: e.Step}
}

func (p *plan) emit(pr api.Progress) {
	if p.progress != nil {
		p.progress(pr)
	}
}

// do runs one step, logs it with its duration and outcome, and records its
// undo when it succeeds.
func (p *plan) do(ctx context.Context, step, message string, fn func(context.Context) error, rollback func(context.Context) error) error {
	start := time.Now()
	p.emit(api.Progress{Step: step, Message: message})
	if err := ctx.Err(); err != nil {
		return p.fail(step, fmt.Errorf("interrupted before %s: %w", step, err))
	}
	err := fn(ctx)
	dur := time.Since(start)
	if err != nil {
		p.log.Error("lifecycle step failed", "op", p.op, "vm", p.vm, "step", step, "duration_ms", dur.Milliseconds(), "err", err)
		return p.fail(step, err)
	}
	p.log.Info("lifecycle step", "op", p.op, "vm", p.vm, "step", step, "duration_ms", dur.Milliseconds(), "outcome", "ok")
	p.emit(api.Progress{Step: step, Finished: true, Seconds: dur.Seconds()})
	if rollback != nil {
		p.undos = append(p.undos, undo{step: step, fn: rollback})
	}
	return nil
}

func (p *plan) fail(step string, err error) error {
	return &StepError{Op: p.op, VM: p.vm, Step: step, Err: err, Logs: p.logs}
}

// rollback undoes every completed step in reverse order.
func (p *plan) rollback() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for i := len(p.undos) - 1; i >= 0; i-- {
		u := p.undos[i]
		if err := u.fn(ctx); err != nil {
			p.log.Error("undoing step failed", "op", p.op, "vm", p.vm, "step", u.step, "err", err)
			errs = append(errs, fmt.Errorf("undoing %s: %w", u.step, err))
			continue
		}
		p.log.Info("undid step", "op", p.op, "vm", p.vm, "step", u.step)
	}
	p.undos = nil
	return errors.Join(errs...)
}

// commit forgets the undos: the operation succeeded.
func (p *plan) commit() { p.undos = nil }
