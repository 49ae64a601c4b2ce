package testutil

import (
	"os"
	"path/filepath"
)

// GuestImageCacheDir is the directory where GuestImage keeps its bootstrap
// cache: $BANGER_TEST_CACHE, or DefaultGuestImageCache.
func GuestImageCacheDir() string {
	dir := os.Getenv(GuestImageCacheEnv)
	if dir == "" {
		dir = DefaultGuestImageCache
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
