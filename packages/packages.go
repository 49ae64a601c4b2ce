package packages

import _ "embed"

//go:embed default.txt
var defaultManifest []byte

//go:embed default-setup.sh
var defaultSetup []byte

// DefaultName is the manifest's name as builds record it.
const DefaultName = "default"

// DefaultSetupName is the file name of the default manifest's setup script.
const DefaultSetupName = "default-setup.sh"

// Default returns the default package manifest, packages/default.txt.
func Default() []byte { return append([]byte(nil), defaultManifest...) }

// DefaultSetup returns the script a build from the default manifest runs
// after its packages, packages/default-setup.sh.
func DefaultSetup() []byte { return append([]byte(nil), defaultSetup...) }
