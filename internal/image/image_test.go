package image

import "testing"

func TestStale(t *testing.T) {
	img := Image{PackagesSHA256: "aaa"}
	if img.Stale("aaa") {
		t.Error("same hash reported stale")
	}
	if !img.Stale("bbb") {
		t.Error("different hash not reported stale")
	}
	if (&Image{}).Stale("bbb") {
		t.Error("image without package file reported stale")
	}
}

func TestValidateName(t *testing.T) {
	if err := ValidateName("base"); err != nil {
		t.Error(err)
	}
	if err := ValidateName("Base Image"); err == nil {
		t.Error("bad image name accepted")
	}
}
