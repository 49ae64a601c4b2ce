package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// ExecUpgrade is the Upgrade token of POST /v1/vms/{name}/exec: the request
// carries an ExecRequest, the daemon answers 101 Switching Protocols, and
// the connection then carries frames both ways (see Frame). An error found
// before the switch (no such VM, VM stopped, bad request) is an ordinary
// JSON error answer.
const ExecUpgrade = "banger-exec"

// ExecRequest is the body of POST /v1/vms/{name}/exec: one command run in
// the guest with each argument intact.
//
// On the wire, a string that is valid UTF-8 is a JSON string and any other
// is {"base64":"…"}, so arguments and paths that are not UTF-8 arrive
// unchanged (a JSON string cannot carry them). Clients may always send
// plain strings.
type ExecRequest struct {
	// Argv is the command and its arguments; Argv[0] is looked up in the
	// guest's PATH. Required.
	Argv []string
	// Env adds KEY=VALUE variables to the command's environment.
	Env []string
	// Workdir is the working directory; the user's home when empty.
	Workdir string
	// User runs the command as this guest user; root when empty.
	User string
	// TTY gives the command a pseudo-terminal (stdout and stderr merged).
	TTY bool
	// Term is TERM for the TTY; "xterm-256color" when empty.
	Term string
	// Size is the TTY's initial size; 24x80 when zero.
	Size WindowSize
	// WaitSeconds bounds the wait for a VM that is still booting; zero
	// takes the daemon's default (3 minutes).
	WaitSeconds int
}

// WindowSize is a terminal's size in character cells.
type WindowSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// execRequestWire is ExecRequest as it is encoded.
type execRequestWire struct {
	Argv    []wireString `json:"argv"`
	Env     []wireString `json:"env,omitempty"`
	Workdir wireString   `json:"workdir,omitempty"`
	User    string       `json:"user,omitempty"`
	TTY     bool         `json:"tty,omitempty"`
	Term    string       `json:"term,omitempty"`
	Size    *WindowSize  `json:"size,omitempty"`
	Wait    int          `json:"wait_seconds,omitempty"`
}

// MarshalJSON encodes r, keeping strings that are not UTF-8 as base64.
func (r ExecRequest) MarshalJSON() ([]byte, error) {
	w := execRequestWire{
		Argv: wireStrings(r.Argv), Env: wireStrings(r.Env), Workdir: wireString(r.Workdir),
		User: r.User, TTY: r.TTY, Term: r.Term, Wait: r.WaitSeconds,
	}
	if r.Size != (WindowSize{}) {
		w.Size = &r.Size
	}
	if w.Argv == nil {
		w.Argv = []wireString{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes r from strings or {"base64":"…"} objects.
func (r *ExecRequest) UnmarshalJSON(data []byte) error {
	var w execRequestWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = ExecRequest{
		Argv: plainStrings(w.Argv), Env: plainStrings(w.Env), Workdir: string(w.Workdir),
		User: w.User, TTY: w.TTY, Term: w.Term, WaitSeconds: w.Wait,
	}
	if w.Size != nil {
		r.Size = *w.Size
	}
	return nil
}

// wireString is a string that survives JSON whatever its bytes.
type wireString string

func (s wireString) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(struct {
		Base64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString([]byte(s))})
}

func (s *wireString) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '{' {
		var b struct {
			Base64 *string `json:"base64"`
		}
		if err := json.Unmarshal(data, &b); err != nil || b.Base64 == nil {
			return fmt.Errorf("want a string or {\"base64\":\"…\"}, got %s", data)
		}
		raw, err := base64.StdEncoding.DecodeString(*b.Base64)
		if err != nil {
			return fmt.Errorf("decoding base64 string: %w", err)
		}
		*s = wireString(raw)
		return nil
	}
	var plain string
	if err := json.Unmarshal(data, &plain); err != nil {
		return err
	}
	*s = wireString(plain)
	return nil
}

func wireStrings(ss []string) []wireString {
	if ss == nil {
		return nil
	}
	out := make([]wireString, len(ss))
	for i, s := range ss {
		out[i] = wireString(s)
	}
	return out
}

func plainStrings(ws []wireString) []string {
	if ws == nil {
		return nil
	}
	out := make([]string, len(ws))
	for i, s := range ws {
		out[i] = string(s)
	}
	return out
}
