package graphql

import (
	"fmt"
	"strconv"

	"github.com/graphql-go/graphql/language/ast"
)

// document is what the HTTP layer needs to know of a parsed request before executing it.
type document struct {
	doc       *ast.Document
	op        *ast.OperationDefinition // the operation that will run; nil when the request names none unambiguously
	fragments map[string]*ast.FragmentDefinition
}

func newDocument(doc *ast.Document, operationName string) *document {
	d := &document{doc: doc, fragments: map[string]*ast.FragmentDefinition{}}
	var ops []*ast.OperationDefinition
	for _, def := range doc.Definitions {
		switch def := def.(type) {
		case *ast.OperationDefinition:
			ops = append(ops, def)
		case *ast.FragmentDefinition:
			if def.Name != nil {
				d.fragments[def.Name.Value] = def
			}
		}
	}
	for _, op := range ops {
		if operationName == "" && len(ops) == 1 || op.Name != nil && op.Name.Value == operationName && operationName != "" {
			d.op = op
		}
	}
	return d
}

// isMutation reports whether the operation that will run is a mutation.
func (d *document) isMutation() bool {
	return d.op != nil && d.op.Operation == ast.OperationTypeMutation
}

// rootFields are the root fields of the operation that will run, in document order, through fragments.
func (d *document) rootFields() []*ast.Field {
	if d.op == nil {
		return nil
	}
	var out []*ast.Field
	seen := map[string]bool{}
	var walk func(ss *ast.SelectionSet)
	walk = func(ss *ast.SelectionSet) {
		if ss == nil {
			return
		}
		for _, sel := range ss.Selections {
			switch s := sel.(type) {
			case *ast.Field:
				out = append(out, s)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Name == nil || seen[s.Name.Value] {
					continue
				}
				seen[s.Name.Value] = true
				if f := d.fragments[s.Name.Value]; f != nil {
					walk(f.SelectionSet)
				}
			}
		}
	}
	walk(d.op.SelectionSet)
	return out
}

// shape is the size of a selection set with its fragments expanded: its depth in fields (a field with a
// selection set counts one level more than its deepest child; introspection's ofType chains count no level)
// and how many fields it has.
type shape struct{ depth, fields int }

// measure computes the shape of every operation of the document, stopping at the first over a limit. A fragment
// is measured once, so a document whose expansion is exponential is measured in linear time.
func (d *document) measure(maxDepth, maxFields int) error {
	memo := map[string]shape{}
	visiting := map[string]bool{}
	var set func(ss *ast.SelectionSet) (shape, error)
	set = func(ss *ast.SelectionSet) (shape, error) {
		var r shape
		if ss == nil {
			return r, nil
		}
		add := func(s shape) {
			r.depth = max(r.depth, s.depth)
			r.fields = min(r.fields+s.fields, maxFields+1)
		}
		for _, sel := range ss.Selections {
			switch s := sel.(type) {
			case *ast.Field:
				sub, err := set(s.SelectionSet)
				if err != nil {
					return r, err
				}
				level := 1
				if s.Name != nil && s.Name.Value == "ofType" {
					level = 0
				}
				add(shape{depth: sub.depth + level, fields: sub.fields + 1})
			case *ast.InlineFragment:
				sub, err := set(s.SelectionSet)
				if err != nil {
					return r, err
				}
				add(sub)
			case *ast.FragmentSpread:
				if s.Name == nil {
					continue
				}
				name := s.Name.Value
				sub, ok := memo[name]
				if !ok {
					f := d.fragments[name]
					if f == nil {
						continue // validation reports it
					}
					if visiting[name] {
						return r, fmt.Errorf("fragment %q spreads itself", name)
					}
					visiting[name] = true
					var err error
					sub, err = set(f.SelectionSet)
					delete(visiting, name)
					if err != nil {
						return r, err
					}
					memo[name] = sub
				}
				add(sub)
			}
			if r.depth > maxDepth {
				return r, fmt.Errorf("the query is more than %d levels deep: ask for less at once (several smaller queries)", maxDepth)
			}
			if r.fields > maxFields {
				return r, fmt.Errorf("the query selects more than %d fields: ask for less at once (several smaller queries)", maxFields)
			}
		}
		return r, nil
	}
	for _, def := range d.doc.Definitions {
		if op, ok := def.(*ast.OperationDefinition); ok {
			if _, err := set(op.SelectionSet); err != nil {
				return err
			}
		}
	}
	return nil
}

// argumentValues are a field's arguments as plain values (variables substituted), for an audit event's detail.
func argumentValues(f *ast.Field, vars map[string]any) map[string]any {
	out := map[string]any{}
	for _, a := range f.Arguments {
		if a == nil || a.Name == nil {
			continue
		}
		out[a.Name.Value] = plainValue(a.Value, vars)
	}
	return out
}

func plainValue(v ast.Value, vars map[string]any) any {
	switch v := v.(type) {
	case *ast.Variable:
		if v.Name == nil {
			return nil
		}
		return vars[v.Name.Value]
	case *ast.IntValue:
		if n, err := strconv.ParseInt(v.Value, 10, 64); err == nil {
			return n
		}
		return v.Value
	case *ast.FloatValue:
		if n, err := strconv.ParseFloat(v.Value, 64); err == nil {
			return n
		}
		return v.Value
	case *ast.StringValue:
		return v.Value
	case *ast.BooleanValue:
		return v.Value
	case *ast.EnumValue:
		return v.Value
	case *ast.ListValue:
		l := make([]any, 0, len(v.Values))
		for _, x := range v.Values {
			l = append(l, plainValue(x, vars))
		}
		return l
	case *ast.ObjectValue:
		m := map[string]any{}
		for _, f := range v.Fields {
			if f != nil && f.Name != nil {
				m[f.Name.Value] = plainValue(f.Value, vars)
			}
		}
		return m
	}
	return nil
}
