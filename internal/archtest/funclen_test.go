package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// maxFuncLines bounds the functions of the packages that hold lifecycle
// orchestration, where a long function is a recipe that should be a list
// of steps.
var maxFuncLines = map[string]int{
	module + "/internal/daemon": 80,
}

func TestOrchestrationFunctionsStayShort(t *testing.T) {
	for _, p := range list(t) {
		limit, ok := maxFuncLines[p.ImportPath]
		if !ok {
			continue
		}
		fset := token.NewFileSet()
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range file.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
				if n := end.Line - start.Line + 1; n > limit {
					t.Errorf("%s:%d: %s is %d lines, over %d: declare it as steps or split it", f, start.Line, fn.Name.Name, n, limit)
				}
			}
		}
	}
}
