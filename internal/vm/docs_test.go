package vm

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestArchitectureDocShowsTheTables keeps the state and operation tables
// of docs/architecture.md equal to the ones the daemon enforces.
func TestArchitectureDocShowsTheTables(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	paren := regexp.MustCompile(`\([^)]*\)`)
	rows := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		rows[strings.TrimSpace(cells[1])] = strings.Split(paren.ReplaceAllString(cells[2], ""), ",")
	}
	for _, from := range States() {
		var got []State
		for _, s := range rows[string(from)] {
			if s = strings.TrimSpace(s); s != "" {
				got = append(got, State(s))
			}
		}
		want := slices.Clone(transitions[from])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("docs/architecture.md: %s may become %v, the table says %v", from, got, want)
		}
	}
	for _, op := range Ops() {
		if !strings.Contains(string(doc), string(op)) {
			t.Errorf("docs/architecture.md does not mention operation %q", op)
		}
	}
}
