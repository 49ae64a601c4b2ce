package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/image"
	"banger/internal/vm"
)

// TestStaleTemplates: a template is stale once its image is gone or was
// rebuilt (a new id) or when it is not suspended; a user's VM named like
// a template, and the image builder's VMs, are never templates.
func TestStaleTemplates(t *testing.T) {
	imgs := []image.Image{{ID: "new", Name: "base"}}
	vms := []vm.VM{
		{Name: "template-new-1x512x8192", Hidden: true, ImageID: "new", State: vm.Suspended},
		{Name: "template-old-1x512x8192", Hidden: true, ImageID: "old", State: vm.Suspended},
		{Name: "template-new-2x512x8192", Hidden: true, ImageID: "new", State: vm.Error},
		{Name: "template-mine", ImageID: "old", State: vm.Stopped},
		{Name: "build-abc", Hidden: true, ImageID: "old", State: vm.Running},
	}
	var got []string
	for _, v := range staleTemplates(imgs, vms) {
		got = append(got, v.Name)
	}
	if diff := cmp.Diff([]string{"template-old-1x512x8192", "template-new-2x512x8192"}, got); diff != "" {
		t.Errorf("stale templates (-want +got):\n%s", diff)
	}
	if name := templateName(&imgs[0], 2, 1024, 8<<30); name != "template-new-2x1024x8192" || vm.ValidateName(name) != nil {
		t.Errorf("templateName = %q (%v)", name, vm.ValidateName(name))
	}
}
