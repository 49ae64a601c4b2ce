package cli

import (
	"os"
	"strings"
	"testing"
)

// TestSystemSetupRefusesBeforeChangingAnything covers the checks the
// command makes before it touches the host: bad flags, no root, no user.
func TestSystemSetupRefusesBeforeChangingAnything(t *testing.T) {
	t.Setenv("SUDO_USER", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"system", "setup", "--pool", "10.213.0.0"}, "--pool"},
		{[]string{"system", "setup", "--pool", "fd00::/48"}, "IPv4"},
		{[]string{"system", "setup", "--subnet-bits", "30"}, "/30"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			args []string
			want string
		}{[]string{"system", "setup", "--helper", "/nonexistent"}, "--user NAME"})
	} else {
		tests = append(tests, struct {
			args []string
			want string
		}{[]string{"system", "setup", "--user", "someone", "--helper", "/nonexistent"}, "run it with sudo"})
	}
	for _, tt := range tests {
		_, stderr, code := run(t, tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("banger %s: exit %d, stderr %q; want a failure saying %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}
