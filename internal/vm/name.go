package vm

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest VM name: one DNS label.
const MaxNameLen = 63

// ValidateName checks that name is a DNS label: 1–63 characters of [a-z0-9-],
// not starting or ending with '-'. The error says what is wrong and what is
// allowed.
func ValidateName(name string) error {
	const rule = "names are DNS labels: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
	switch {
	case name == "":
		return fmt.Errorf("invalid vm name: empty (%s)", rule)
	case len(name) > MaxNameLen:
		return fmt.Errorf("invalid vm name %q: %d characters, at most %d (%s)", name, len(name), MaxNameLen, rule)
	case strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-"):
		return fmt.Errorf("invalid vm name %q: starts or ends with '-' (%s)", name, rule)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			hint := ""
			if lower := strings.ToLower(name); lower != name && ValidateName(lower) == nil {
				hint = fmt.Sprintf("; try %q", lower)
			}
			return fmt.Errorf("invalid vm name %q: character %q at position %d (%s)%s", name, r, i+1, rule, hint)
		}
	}
	return nil
}
