package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
)

func TestExecThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	c := inst.Client
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	argv := []string{"echo", "two words", "$HOME", "*", "line\nbreak"}
	code, err := c.Exec(ctx, "dev", api.ExecRequest{Argv: argv}, api.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 || out.String() != strings.Join(argv, "\n")+"\n" {
		t.Errorf("exec echo = %d, %v, %q", code, err, out.String())
	}
	out.Reset()
	code, err = c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"cat"}}, api.ExecIO{Stdin: strings.NewReader("from stdin"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "from stdin" {
		t.Errorf("exec cat = %d, %v, %q", code, err, out.String())
	}
	out.Reset()
	code, err = c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"fail", "7"}}, api.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil || code != 7 || !strings.Contains(errb.String(), "failing with 7") || out.Len() != 0 {
		t.Errorf("exec fail 7 = %d, %v, stdout %q stderr %q", code, err, out.String(), errb.String())
	}

	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "down", Image: "base", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "down", api.ExecRequest{Argv: []string{"true"}}, api.ExecIO{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict || !strings.Contains(ae.Hint, "banger vm start down") {
		t.Errorf("exec in a stopped vm: %v", err)
	}
	if _, err := c.Exec(ctx, "ghost", api.ExecRequest{Argv: []string{"true"}}, api.ExecIO{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("exec in an unknown vm: %v", err)
	}
	if _, err := c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"true"}, Env: []string{"1BAD=x"}}, api.ExecIO{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("exec with a bad env name: %v", err)
	}
	if _, err := c.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	if calls := inst.Host.Calls(); !strings.Contains(strings.Join(calls, "\n"), "forget dev") {
		t.Errorf("stopping the vm did not drop its guest connection: %v", calls)
	}
}
