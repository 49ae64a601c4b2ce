package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGuestImageCache(t *testing.T) {
	t.Setenv(GuestImageCacheEnv, "")
	if got, err := GuestImageCache(); err != nil || got != DefaultGuestImageCache {
		t.Errorf("default cache = %q, %v; want %s", got, err, DefaultGuestImageCache)
	}
	wd, _ := os.Getwd()
	t.Setenv(GuestImageCacheEnv, "rel/cache")
	if got, err := GuestImageCache(); err != nil || got != filepath.Join(wd, "rel/cache") {
		t.Errorf("relative cache = %q, %v; want it made absolute", got, err)
	}
}
