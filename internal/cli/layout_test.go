package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Each command is built in its own file, and its RunE only hands over to a
// plain function: the work can be read, and tested, without Cobra.
func TestOneCommandPerFileAndNoLogicInRunE(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var commands []string
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || !isCobraCommand(lit.Type) {
				return true
			}
			seen++
			use := "?"
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				switch key := kv.Key.(*ast.Ident).Name; key {
				case "Use":
					if b, ok := kv.Value.(*ast.BasicLit); ok {
						use = b.Value
					}
				case "RunE", "Run":
					fn, ok := kv.Value.(*ast.FuncLit)
					if ok && len(fn.Body.List) != 1 {
						t.Errorf("%s: the %s of command %s has %d statements; call a runX function instead", fset.Position(kv.Pos()), key, use, len(fn.Body.List))
					}
				}
			}
			commands = append(commands, use)
			return true
		})
		if len(commands) > 1 {
			t.Errorf("%s builds %d commands (%s); give each its own file", name, len(commands), strings.Join(commands, ", "))
		}
	}
	if seen < 20 {
		t.Errorf("found only %d cobra.Command literals; is the test reading the package?", seen)
	}
}

func isCobraCommand(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "cobra" && sel.Sel.Name == "Command"
}
