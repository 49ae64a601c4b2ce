package network

import (
	"fmt"
	"slices"
	"strings"
)

// Render writes the named bridge and every TAP named with tapPrefix as one
// line each, sorted, in a fixed format, so tests can compare host state with
// go-cmp and a diff reads as the change it is:
//
//	bridge banger0 mac 0a:… up addrs 10.213.0.1/24
//	tap bg-dev mac 06:… master banger0 up owner 1000
//
// Links banger does not own are left out.
func Render(links []Link, bridge, tapPrefix string) string {
	var lines []string
	for _, l := range links {
		var b strings.Builder
		switch {
		case l.Name == bridge:
			fmt.Fprintf(&b, "bridge %s kind %s mac %s", l.Name, l.Kind, l.MAC)
		case l.Kind == "tuntap" && strings.HasPrefix(l.Name, tapPrefix):
			fmt.Fprintf(&b, "tap %s mac %s", l.Name, l.MAC)
			if l.Master != "" {
				fmt.Fprintf(&b, " master %s", l.Master)
			}
		default:
			continue
		}
		if l.Up {
			b.WriteString(" up")
		} else {
			b.WriteString(" down")
		}
		if l.Kind == "tuntap" {
			fmt.Fprintf(&b, " owner %d", l.Owner)
		}
		if len(l.Addrs) > 0 {
			addrs := make([]string, len(l.Addrs))
			for i, a := range l.Addrs {
				addrs[i] = a.String()
			}
			slices.Sort(addrs)
			fmt.Fprintf(&b, " addrs %s", strings.Join(addrs, ","))
		}
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
