package bootstrap

import (
	"os"
	"strings"
	"testing"
)

// TestDocsMatchCode keeps docs/images.md saying what the code does: the
// packages CheckTools asks for, the masked units, the modules and the
// labels of the guest contract.
func TestDocsMatchCode(t *testing.T) {
	b, err := os.ReadFile("../../docs/images.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	var want []string
	for _, tool := range RequiredTools(ModeRootless) {
		want = append(want, "`"+tool.Package+"`")
	}
	want = append(want, "install it with `apt-get install mmdebstrap`", "`"+RootLabel+"`", "`banger-work`",
		"console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=<guest-ip>::<gateway>:<netmask>:<hostname>:eth0:off:<dns>")
	want = append(want, strings.Join(DefaultModules(), " "))
	for _, p := range basePackages() {
		want = append(want, "`"+p+"`")
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/images.md lacks %q", w)
		}
	}
}
