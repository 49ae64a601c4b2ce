package disk

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DebugfsArgv is the command that runs a debugfs script read from standard
// input against image, read-only unless write is set.
func DebugfsArgv(image string, write bool) []string {
	argv := []string{"debugfs"}
	if write {
		argv = append(argv, "-w")
	}
	return append(argv, "-f", "-", image)
}

// debugfs runs cmds in one debugfs process and returns each command's
// output. debugfs exits 0 even when commands fail (it reports on standard
// error), so callers judge success from the outputs.
func (m *Manager) debugfs(ctx context.Context, image string, write bool, cmds []string) ([]string, error) {
	argv, err := m.argv(DebugfsArgv(image, write)...)
	if err != nil {
		return nil, err
	}
	script := strings.Join(cmds, "\n") + "\n"
	out, err := m.run.RunInput(ctx, strings.NewReader(script), argv...)
	if err != nil {
		return nil, err
	}
	return splitSections(string(out), cmds)
}

// splitSections cuts debugfs script output into one piece per command.
// debugfs echoes every command it reads from a script as "debugfs: CMD\n"
// before running it; a piece is what follows the echo up to the next one.
func splitSections(out string, cmds []string) ([]string, error) {
	type span struct{ echo, body int }
	spans := make([]span, len(cmds))
	pos := 0
	for i, c := range cmds {
		marker := "debugfs: " + c + "\n"
		j := strings.Index(out[pos:], marker)
		if j < 0 {
			return nil, fmt.Errorf("debugfs output lacks the echo of %q", c)
		}
		spans[i] = span{pos + j, pos + j + len(marker)}
		pos = spans[i].body
	}
	res := make([]string, len(cmds))
	for i, s := range spans {
		end := len(out)
		if i+1 < len(spans) {
			end = spans[i+1].echo
		}
		res[i] = out[s.body:end]
	}
	return res, nil
}

var (
	statTypeMode = regexp.MustCompile(`Type:\s+(\S+)\s+Mode:\s+([0-7]+)`)
	statOwner    = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+).*?\sSize:\s+(\d+)`)
)

// parseStat reads type, mode, owner and size from debugfs's stat output;
// ok is false when the output holds no inode (the path does not exist).
func parseStat(out string) (inode, bool) {
	tm := statTypeMode.FindStringSubmatch(out)
	ow := statOwner.FindStringSubmatch(out)
	if tm == nil || ow == nil {
		return inode{}, false
	}
	perm, _ := strconv.ParseUint(tm[2], 8, 32)
	uid, _ := strconv.ParseUint(ow[1], 10, 32)
	gid, _ := strconv.ParseUint(ow[2], 10, 32)
	size, _ := strconv.ParseInt(ow[3], 10, 64)
	return inode{Type: tm[1], Perm: uint32(perm), UID: uint32(uid), GID: uint32(gid), Size: size}, true
}
