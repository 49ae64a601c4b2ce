package packages

import _ "embed"

//go:embed default.txt
var defaultManifest []byte

// DefaultName is the manifest's name as builds record it.
const DefaultName = "default"

// Default returns the default package manifest, packages/default.txt.
func Default() []byte { return append([]byte(nil), defaultManifest...) }
