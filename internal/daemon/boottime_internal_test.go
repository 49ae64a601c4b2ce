package daemon

import (
	"testing"
	"time"

	"banger/internal/guest"
)

// The connection time anchors the boot timeline when an earlier attempt
// found the port closed, or failed shortly before (a guest whose sshd
// starts right after its address: the attempts go unanswered, not
// refused); not when the first attempt connected, or the last failure was
// long before.
func TestPortOpenKnown(t *testing.T) {
	at := time.Date(2026, 11, 28, 17, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		ready guest.Readiness
		want  bool
	}{
		{"first attempt", guest.Readiness{Attempts: 1, Connected: at}, false},
		{"refused before", guest.Readiness{Attempts: 9, Refused: true, LastFailed: at.Add(-3 * time.Second), Connected: at}, true},
		{"unanswered just before", guest.Readiness{Attempts: 5, LastFailed: at.Add(-180 * time.Millisecond), Connected: at}, true},
		{"unanswered long before", guest.Readiness{Attempts: 12, LastFailed: at.Add(-2 * time.Second), Connected: at}, false},
	} {
		if got := portOpenKnown(tc.ready); got != tc.want {
			t.Errorf("%s: portOpenKnown = %v, want %v", tc.name, got, tc.want)
		}
	}
}
