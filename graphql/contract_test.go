package graphql

import (
	"fmt"
	"os"
	"testing"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"
	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/printer"

	"portmirror/service"
)

// TestSchemaHoldsTheContract checks the served schema against the contracted part of API.md (copied verbatim to
// testdata/contract.graphql): every type, field, argument, input field, default and enum value, with the same
// type. The schema may have more; it may not have less or different.
func TestSchemaHoldsTheContract(t *testing.T) {
	text, err := os.ReadFile("testdata/contract.graphql")
	if err != nil {
		t.Fatal(err)
	}
	contract, err := parser.Parse(parser.ParseParams{Source: string(text)})
	if err != nil {
		t.Fatalf("parsing the contract: %v", err)
	}
	schema, err := NewSchema(&service.Service{})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, def := range contract.Definitions {
		switch d := def.(type) {
		case *ast.ScalarDefinition:
			if _, ok := schema.Type(d.Name.Value).(*gql.Scalar); !ok {
				t.Errorf("scalar %s: missing", d.Name.Value)
			}
		case *ast.EnumDefinition:
			e, ok := schema.Type(d.Name.Value).(*gql.Enum)
			if !ok {
				t.Errorf("enum %s: missing", d.Name.Value)
				continue
			}
			have := map[string]bool{}
			for _, v := range e.Values() {
				have[v.Name] = true
			}
			for _, v := range d.Values {
				checked++
				if !have[v.Name.Value] {
					t.Errorf("enum %s: value %s missing", d.Name.Value, v.Name.Value)
				}
			}
		case *ast.ObjectDefinition:
			o, ok := schema.Type(d.Name.Value).(*gql.Object)
			if !ok {
				t.Errorf("type %s: missing", d.Name.Value)
				continue
			}
			fields := o.Fields()
			for _, f := range d.Fields {
				checked++
				name := d.Name.Value + "." + f.Name.Value
				ours, ok := fields[f.Name.Value]
				if !ok {
					t.Errorf("%s: missing", name)
					continue
				}
				if got, want := ours.Type.String(), typeString(f.Type); got != want {
					t.Errorf("%s: type %s, the contract says %s", name, got, want)
				}
				args := map[string]*gql.Argument{}
				for _, a := range ours.Args {
					args[a.Name()] = a
				}
				for _, a := range f.Arguments {
					checked++
					oa, ok := args[a.Name.Value]
					if !ok {
						t.Errorf("%s(%s): argument missing", name, a.Name.Value)
						continue
					}
					checkTypeAndDefault(t, name+"("+a.Name.Value+")", oa.Type, a.Type, oa.DefaultValue, a.DefaultValue)
				}
			}
		case *ast.InputObjectDefinition:
			in, ok := schema.Type(d.Name.Value).(*gql.InputObject)
			if !ok {
				t.Errorf("input %s: missing", d.Name.Value)
				continue
			}
			fields := in.Fields()
			for _, f := range d.Fields {
				checked++
				name := d.Name.Value + "." + f.Name.Value
				ours, ok := fields[f.Name.Value]
				if !ok {
					t.Errorf("%s: missing", name)
					continue
				}
				checkTypeAndDefault(t, name, ours.Type, f.Type, ours.DefaultValue, f.DefaultValue)
			}
		default:
			t.Errorf("the contract has a definition this test does not check: %T", def)
		}
	}
	if checked < 150 {
		t.Errorf("checked only %d fields, arguments and values: is the contract file complete?", checked)
	}
}

func typeString(t ast.Type) string { return fmt.Sprint(printer.Print(t)) }

// checkTypeAndDefault holds an argument or input field of ours (its type and default) to the contract's.
func checkTypeAndDefault(t *testing.T, name string, got gql.Type, want ast.Type, gotDefault any, wantDefault ast.Value) {
	t.Helper()
	if g, w := got.String(), typeString(want); g != w {
		t.Errorf("%s: type %s, the contract says %s", name, g, w)
	}
	g, w := "<none>", "<none>"
	if gotDefault != nil {
		g = fmt.Sprint(gotDefault)
	}
	if wantDefault != nil {
		w = fmt.Sprint(plainValue(wantDefault, nil))
	}
	if g != w {
		t.Errorf("%s: default %s, the contract says %s", name, g, w)
	}
}
