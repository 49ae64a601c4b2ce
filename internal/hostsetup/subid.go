package hostsetup

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// SubIDRange is one line of /etc/subuid or /etc/subgid: an owner (name or
// uid) and a range of subordinate ids.
type SubIDRange struct {
	Owner        string
	Start, Count int
}

// SubIDCount is the range size mmdebstrap --mode=unshare needs (and
// useradd gives by default).
const SubIDCount = 65536

// subIDMin is where automatic ranges start (login.defs' SUB_UID_MIN).
const subIDMin = 100000

// ParseSubIDs reads /etc/subuid or /etc/subgid. Comments and blank lines
// are skipped; a malformed line is an error.
func ParseSubIDs(data []byte) ([]SubIDRange, error) {
	var out []SubIDRange
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d %q: want OWNER:START:COUNT", n, line)
		}
		start, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || start < 0 || count < 1 {
			return nil, fmt.Errorf("line %d %q: bad numbers", n, line)
		}
		out = append(out, SubIDRange{Owner: f[0], Start: start, Count: count})
	}
	return out, sc.Err()
}

// HasSubIDs reports whether user (by name or uid) owns a range of at least
// SubIDCount ids.
func HasSubIDs(ranges []SubIDRange, user string, uid int) bool {
	for _, r := range ranges {
		if (r.Owner == user || r.Owner == strconv.Itoa(uid)) && r.Count >= SubIDCount {
			return true
		}
	}
	return false
}

// FreeSubIDs returns the first range of SubIDCount ids, from 100000 in
// steps of SubIDCount, that overlaps no range in any of the lists.
func FreeSubIDs(lists ...[]SubIDRange) int {
	start := subIDMin
	for {
		clash := false
		for _, l := range lists {
			for _, r := range l {
				if start < r.Start+r.Count && r.Start < start+SubIDCount {
					clash = true
				}
			}
		}
		if !clash {
			return start
		}
		start += SubIDCount
	}
}
