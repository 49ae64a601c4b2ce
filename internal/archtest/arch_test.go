package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "banger"

// mayExec lists the packages allowed to start processes, each with its reason.
var mayExec = map[string]string{
	module + "/internal/cli":         "hands off to the OpenSSH client and starts bangerd on demand",
	module + "/internal/firecracker": "launches VMM processes in their own session",
	module + "/internal/system":      "the one approved shell-out layer",
	module + "/internal/testutil":    "test helpers re-run tests in namespaces and build test binaries",
}

// forbiddenInCLI are packages the banger CLI binary must not link: it talks
// to the daemon over the API and never touches state itself.
var forbiddenInCLI = []string{
	"modernc.org/sqlite",
	module + "/internal/store",
	module + "/internal/daemon",
}

type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	Doc        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

func list(t *testing.T) []pkg {
	t.Helper()
	root := filepath.Join("..", "..")
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

var processCalls = regexp.MustCompile(`\b(os\.StartProcess|syscall\.(Exec|ForkExec|StartProcess)|unix\.(Exec|ForkExec))\b`)

func TestOnlyApprovedPackagesStartProcesses(t *testing.T) {
	for _, p := range list(t) {
		if _, ok := mayExec[p.ImportPath]; ok {
			continue
		}
		for _, imp := range p.Imports {
			if imp == "os/exec" {
				t.Errorf("%s imports os/exec; run commands through internal/system instead", p.ImportPath)
			}
		}
		for _, f := range p.GoFiles {
			data, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if m := processCalls.Find(data); m != nil {
				t.Errorf("%s/%s calls %s; start processes through internal/system instead", p.ImportPath, f, m)
			}
		}
	}
}

func TestCLIDoesNotLinkStateOrDaemon(t *testing.T) {
	for _, p := range list(t) {
		if p.ImportPath != module+"/cmd/banger" {
			continue
		}
		for _, dep := range p.Deps {
			for _, bad := range forbiddenInCLI {
				if dep == bad {
					t.Errorf("cmd/banger links %s; the CLI must reach state only through the daemon API", bad)
				}
			}
		}
		return
	}
	t.Fatal("cmd/banger not found")
}

func TestShippedBinariesDoNotLinkTestFakes(t *testing.T) {
	for _, p := range list(t) {
		if !strings.HasPrefix(p.ImportPath, module+"/cmd/") {
			continue
		}
		for _, dep := range p.Deps {
			if strings.HasSuffix(dep, "/daemontest") || strings.HasSuffix(dep, "/testutil") {
				t.Errorf("%s links the test helper %s", p.ImportPath, dep)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range list(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment (add a doc.go)", p.ImportPath)
		}
	}
}

func TestMainPackagesLiveUnderCmd(t *testing.T) {
	for _, p := range list(t) {
		if p.Name == "main" && !strings.HasPrefix(p.ImportPath, module+"/cmd/") {
			t.Errorf("%s is a main package outside cmd/", p.ImportPath)
		}
	}
}
