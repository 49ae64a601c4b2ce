package system

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Fake is a Runner for tests. It records every argv and answers through
// Handler, which sees the argv and any standard input. A nil Handler makes
// every command succeed with empty output.
type Fake struct {
	Handler func(argv []string, stdin []byte) ([]byte, error)

	mu    sync.Mutex
	calls [][]string
}

// Calls returns the argvs run so far, in order.
func (f *Fake) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.calls))
	copy(out, f.calls)
	return out
}

// CallLines returns the argvs run so far, each joined by spaces.
func (f *Fake) CallLines() []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, strings.Join(c, " "))
	}
	return out
}

// Run implements Runner.
func (f *Fake) Run(ctx context.Context, argv ...string) error {
	_, err := f.RunInput(ctx, nil, argv...)
	return err
}

// Output implements Runner.
func (f *Fake) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return f.RunInput(ctx, nil, argv...)
}

// RunInput implements InputRunner.
func (f *Fake) RunInput(_ context.Context, in io.Reader, argv ...string) ([]byte, error) {
	var stdin []byte
	if in != nil {
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("reading fake stdin: %w", err)
		}
		stdin = b
	}
	f.mu.Lock()
	f.calls = append(f.calls, append([]string(nil), argv...))
	h := f.Handler
	f.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	return h(argv, stdin)
}
