package bootstrap

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// fakeDebugfs models what Build asks of debugfs on an image's /dev: `-w -f
// SCRIPT IMAGE` runs the script's cd, mknod, sif, symlink and mkdir as the
// real debugfs does (mknod and mkdir add an entry even when the name is
// taken, as the real mknod does), and `-R 'ls -p /dev' IMAGE` lists the
// entries in debugfs's format. Like the real one, it exits 0 whatever
// fails.
type fakeDebugfs struct {
	mu  sync.Mutex
	dev map[string]map[string]lsEntry // image → name → entry
	dup map[string][]string           // image → names added twice
}

func (f *fakeDebugfs) run(argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dev == nil {
		f.dev, f.dup = map[string]map[string]lsEntry{}, map[string][]string{}
	}
	image := argv[len(argv)-1]
	if f.dev[image] == nil {
		f.dev[image] = map[string]lsEntry{}
	}
	dev := f.dev[image]
	switch {
	case len(argv) == 5 && argv[1] == "-w" && argv[2] == "-f":
		script, err := os.ReadFile(argv[3])
		if err != nil {
			return nil, nil
		}
		add := func(name string, mode uint32) {
			if _, ok := dev[name]; ok {
				f.dup[image] = append(f.dup[image], name)
			}
			dev[name] = lsEntry{Mode: mode}
		}
		for _, line := range strings.Split(strings.TrimSpace(string(script)), "\n") {
			w := strings.Fields(line)
			switch {
			case len(w) == 2 && w[0] == "cd" && w[1] == "/dev":
			case len(w) == 5 && w[0] == "mknod" && w[2] == "c":
				add(w[1], modeCharDev)
			case len(w) == 4 && w[0] == "sif" && w[2] == "mode":
				if e, ok := dev[w[1]]; ok {
					m, _ := strconv.ParseUint(w[3], 8, 32)
					e.Mode = uint32(m)
					dev[w[1]] = e
				}
			case len(w) == 3 && w[0] == "symlink":
				add(w[1], modeSymlink|0o777)
			case len(w) == 2 && w[0] == "mkdir":
				add(w[1], modeDir|0o755)
			}
		}
		return nil, nil
	case len(argv) == 4 && argv[1] == "-R" && argv[2] == "ls -p /dev":
		var b strings.Builder
		ino := 12
		fmt.Fprintf(&b, "/%d/040755/0/0/.//\n/2/040755/0/0/..//\n", ino)
		for name, e := range dev {
			ino++
			fmt.Fprintf(&b, "/%d/%06o/%d/%d/%s/0/\n", ino, e.Mode, e.UID, e.GID, name)
		}
		for _, name := range f.dup[image] {
			ino++
			fmt.Fprintf(&b, "/%d/%06o/0/0/%s/0/\n", ino, dev[name].Mode, name)
		}
		return []byte(b.String()), nil
	}
	return nil, nil
}
