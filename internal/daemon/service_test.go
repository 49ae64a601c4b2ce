package daemon

import "testing"

func TestUnitFromCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"0::/user.slice/user-1000.slice/user@1000.service/app.slice/bangerd.service\n":                     "bangerd.service",
		"0::/user.slice/user-1000.slice/session-3.scope\n":                                                 "",
		"0::/user.slice/user-1000.slice/user@1000.service/init.scope\n":                                    "",
		"0::/user.slice/user-1000.slice/user@1000.service\n":                                               "",
		"12:pids:/x.service\n1:name=systemd:/user.slice/user-1000.slice/user@1000.service/bangerd.service": "bangerd.service",
		"4:memory:/system.slice/other.service\n":                                                           "",
		"":                                                                                                 "",
	} {
		if got := UnitFromCgroup(in); got != want {
			t.Errorf("UnitFromCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}
