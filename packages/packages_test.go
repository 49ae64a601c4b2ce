package packages

import (
	"bytes"
	"os/exec"
	"testing"
)

func TestDefaultSetupIsShell(t *testing.T) {
	if !bytes.HasPrefix(DefaultSetup(), []byte("#!/bin/sh\n")) {
		t.Error("default-setup.sh does not start with #!/bin/sh")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to check the script's syntax with")
	}
	cmd := exec.Command(sh, "-n")
	cmd.Stdin = bytes.NewReader(DefaultSetup())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sh -n default-setup.sh: %v\n%s", err, out)
	}
}
