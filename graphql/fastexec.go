package graphql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"
)

// The fast path executes the common queries (plain selections of the schema's object fields) without
// graphql-go's executor, which builds a map per object, a ResolveInfo and a response path per field and walks
// the whole result again for thunks: on a listing of 10k sessions with both NICs that is most of the time. It
// calls the same resolvers and writes the answer straight to JSON, byte for byte what encoding/json writes for
// graphql-go's result (object keys sorted, the same string escaping).
//
// It handles what it can prove it answers identically and gives up otherwise, and the request then runs through
// graphql-go as before: a mutation, a variable or argument that is not a scalar or an enum (or that is null),
// directives, introspection other than __typename, a
// response key selected twice, abstract types, a thunk, and any resolver error or null in a non-null field (so
// every error, with its path and extensions, is still graphql-go's). Queries have no side effects, so running
// one again after giving up changes nothing.

// minFastBuf is the least a response buffer starts with; it doubles as it fills (see object).
const minFastBuf = 64 << 10

// errGiveUp stops the fast path; the request runs through graphql-go.
var errGiveUp = errors.New("graphql: fast path does not apply")

// fastExec is one execution of the fast path.
type fastExec struct {
	schema    *gql.Schema
	ctx       context.Context
	doc       *document
	buf       []byte
	noArgs    map[string]any
	fragments map[string]ast.Definition
	collected map[*ast.SelectionSet]*collectedSet // per selection set and object type: fields to run, by key
	vars      map[string]any                      // the operation's variables, coerced as graphql-go coerces them
}

// inputLeaf is a scalar or enum input type: what graphql-go coerces variables and literal arguments with.
type inputLeaf interface {
	ParseValue(any) any
	ParseLiteral(ast.Value) any
}

// collectedSet is a selection set's fields for one object type, sorted by response key.
type collectedSet struct {
	typ    *gql.Object
	fields []collectedField
}

type collectedField struct {
	key      string
	ast      *ast.Field
	def      *gql.FieldDefinition // nil for __typename
	args     map[string]any       // the defaults of the field's arguments; nil when it has none
	typename bool
	info     gql.ResolveInfo
}

// executeFast runs the document's query and returns its response body ({"data":...} and a newline), or errGiveUp.
// The body is appended to buf[:0] (nil: a new buffer), so that a caller can give the buffer of an earlier answer.
func executeFast(ctx context.Context, schema *gql.Schema, doc *document, variables map[string]any, buf []byte) (body []byte, err error) {
	op := doc.op
	if op == nil || op.Operation != ast.OperationTypeQuery || len(op.Directives) > 0 {
		return nil, errGiveUp
	}
	vars, err := coerceVariables(schema, op.VariableDefinitions, variables)
	if err != nil {
		return nil, err
	}
	// A quiet copy of the request's info: an error makes the request run again through graphql-go, which logs it.
	ri := requestInfoFrom(ctx)
	ctx = withRequestInfo(ctx, &requestInfo{id: ri.id, logger: slog.New(slog.DiscardHandler)})
	e := &fastExec{schema: schema, ctx: ctx, doc: doc, noArgs: map[string]any{}, fragments: map[string]ast.Definition{},
		collected: map[*ast.SelectionSet]*collectedSet{}, vars: vars, buf: buf[:0]}
	if cap(e.buf) < minFastBuf {
		e.buf = make([]byte, 0, minFastBuf)
	}
	for name, f := range doc.fragments {
		e.fragments[name] = f
	}
	defer func() {
		if r := recover(); r != nil {
			body, err = nil, fmt.Errorf("%w: panic: %v", errGiveUp, r)
		}
	}()
	e.buf = append(e.buf, `{"data":`...)
	if err := e.object(schema.QueryType(), op.SelectionSet, nil); err != nil {
		return nil, err
	}
	e.buf = append(e.buf, "}\n"...)
	return e.buf, nil
}

// collect lists the fields of a selection set for an object type, through fragments, sorted by response key.
func (e *fastExec) collect(typ *gql.Object, ss *ast.SelectionSet) (*collectedSet, error) {
	if c, ok := e.collected[ss]; ok && c.typ == typ {
		return c, nil
	}
	c := &collectedSet{typ: typ}
	visited := map[string]bool{}
	defs := typ.Fields()
	var walk func(ss *ast.SelectionSet) error
	// walkIf walks a fragment's selection set when its type condition applies to typ.
	walkIf := func(cond *ast.Named, ss *ast.SelectionSet) error {
		applies, err := e.applies(typ, cond)
		if err != nil || !applies {
			return err
		}
		return walk(ss)
	}
	walk = func(ss *ast.SelectionSet) error {
		if ss == nil {
			return nil
		}
		for _, sel := range ss.Selections {
			switch s := sel.(type) {
			case *ast.Field:
				if len(s.Directives) > 0 || s.Name == nil || (len(s.Arguments) > 0 && strings.HasPrefix(s.Name.Value, "__")) {
					return errGiveUp
				}
				key := s.Name.Value
				if s.Alias != nil {
					key = s.Alias.Value
				}
				f := collectedField{key: key, ast: s}
				switch {
				case s.Name.Value == "__typename":
					f.typename = true
				case strings.HasPrefix(s.Name.Value, "__"):
					return errGiveUp
				default:
					f.def = defs[s.Name.Value]
					if f.def == nil {
						return errGiveUp
					}
					args, err := e.arguments(f.def, s.Arguments)
					if err != nil {
						return err
					}
					f.args = args
					f.info = gql.ResolveInfo{FieldName: s.Name.Value, FieldASTs: []*ast.Field{s}, ReturnType: f.def.Type,
						ParentType: typ, Schema: *e.schema, Fragments: e.fragments, Operation: e.doc.op}
				}
				c.fields = append(c.fields, f)
			case *ast.InlineFragment:
				if len(s.Directives) > 0 {
					return errGiveUp
				}
				if err := walkIf(s.TypeCondition, s.SelectionSet); err != nil {
					return err
				}
			case *ast.FragmentSpread:
				if len(s.Directives) > 0 || s.Name == nil {
					return errGiveUp
				}
				if visited[s.Name.Value] {
					continue
				}
				visited[s.Name.Value] = true
				fd := e.doc.fragments[s.Name.Value]
				if fd == nil {
					return errGiveUp
				}
				if err := walkIf(fd.TypeCondition, fd.SelectionSet); err != nil {
					return err
				}
			default:
				return errGiveUp
			}
		}
		return nil
	}
	if err := walk(ss); err != nil {
		return nil, err
	}
	slices.SortStableFunc(c.fields, func(a, b collectedField) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(c.fields); i++ {
		if c.fields[i].key == c.fields[i-1].key {
			return nil, errGiveUp // graphql-go merges the selections of a repeated key
		}
	}
	e.collected[ss] = c
	return c, nil
}

// coerceVariables coerces the request's variables as graphql-go does, for variables of a scalar or enum type; a
// variable of another type, or one whose value is null or does not coerce, gives up (graphql-go then answers,
// with its error where there is one).
func coerceVariables(schema *gql.Schema, defs []*ast.VariableDefinition, input map[string]any) (map[string]any, error) {
	if len(defs) == 0 {
		return nil, nil
	}
	vars := make(map[string]any, len(defs))
	for _, d := range defs {
		if d.Variable == nil || d.Variable.Name == nil {
			return nil, errGiveUp
		}
		t := d.Type
		if nn, ok := t.(*ast.NonNull); ok {
			t = nn.Type
		}
		named, ok := t.(*ast.Named)
		if !ok || named.Name == nil {
			return nil, errGiveUp
		}
		leaf, ok := schema.Type(named.Name.Value).(inputLeaf)
		if !ok {
			return nil, errGiveUp
		}
		name := d.Variable.Name.Value
		var v any
		if in, ok := input[name]; ok && in != nil {
			v = leaf.ParseValue(in)
		} else if d.DefaultValue != nil {
			v = leaf.ParseLiteral(d.DefaultValue)
		}
		if nullish(reflect.ValueOf(v)) {
			return nil, errGiveUp
		}
		vars[name] = v
	}
	return vars, nil
}

// arguments is a field's arguments as graphql-go gives them to its resolver: each argument given as a scalar or
// enum literal or as a variable, coerced, and the defaults of those not given; nil when there are none. Any other
// argument value gives up.
func (e *fastExec) arguments(def *gql.FieldDefinition, given []*ast.Argument) (map[string]any, error) {
	var args map[string]any
	set := func(name string, v any) {
		if args == nil {
			args = map[string]any{}
		}
		args[name] = v
	}
	for _, a := range given {
		if a.Name == nil || !slices.ContainsFunc(def.Args, func(d *gql.Argument) bool { return d.PrivateName == a.Name.Value }) {
			return nil, errGiveUp
		}
	}
	for _, d := range def.Args {
		var valueAST ast.Value
		for _, a := range given {
			if a.Name.Value == d.PrivateName {
				valueAST = a.Value
			}
		}
		var v any
		switch x := valueAST.(type) {
		case nil:
		case *ast.Variable:
			if x.Name == nil {
				return nil, errGiveUp
			}
			var ok bool
			if v, ok = e.vars[x.Name.Value]; !ok {
				return nil, errGiveUp
			}
		default:
			t := d.Type
			if nn, ok := t.(*gql.NonNull); ok {
				t = nn.OfType
			}
			leaf, ok := t.(inputLeaf)
			if !ok {
				return nil, errGiveUp
			}
			if v = leaf.ParseLiteral(valueAST); nullish(reflect.ValueOf(v)) {
				return nil, errGiveUp
			}
		}
		if v == nil {
			v = d.DefaultValue
		}
		if v != nil {
			set(d.PrivateName, v)
		}
	}
	return args, nil
}

// applies reports whether a fragment with the type condition applies to an object type; a condition naming an
// interface or union gives up.
func (e *fastExec) applies(typ *gql.Object, cond *ast.Named) (bool, error) {
	if cond == nil || cond.Name == nil {
		return true, nil
	}
	t := e.schema.Type(cond.Name.Value)
	o, ok := t.(*gql.Object)
	if !ok {
		return false, errGiveUp
	}
	return o.Name() == typ.Name(), nil
}

// object writes an object's selected fields as a JSON object.
func (e *fastExec) object(typ *gql.Object, ss *ast.SelectionSet, source any) error {
	if typ.IsTypeOf != nil {
		return errGiveUp
	}
	c, err := e.collect(typ, ss)
	if err != nil {
		return err
	}
	if cap(e.buf)-len(e.buf) < 4<<10 {
		// Double the buffer before it fills: append alone grows a large slice by a quarter each time, and a page
		// of megabytes would be copied a dozen times over.
		e.buf = slices.Grow(e.buf, cap(e.buf))
	}
	e.buf = append(e.buf, '{')
	for i := range c.fields {
		f := &c.fields[i]
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendJSONString(e.buf, f.key)
		e.buf = append(e.buf, ':')
		if f.typename {
			e.buf = appendJSONString(e.buf, typ.Name())
			continue
		}
		resolve := f.def.Resolve
		if resolve == nil {
			return errGiveUp // graphql-go's default resolver works by reflection; every field of ours has its own
		}
		args := e.noArgs
		if f.args != nil {
			args = maps.Clone(f.args) // graphql-go gives every call a map of its own
		}
		v, err := resolve(gql.ResolveParams{Source: source, Args: args, Info: f.info, Context: e.ctx})
		if err != nil {
			return errGiveUp
		}
		if err := e.value(f.def.Type, f.ast, v); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// value writes a resolved value of type t, completed as graphql-go completes it.
func (e *fastExec) value(t gql.Type, fa *ast.Field, v any) error {
	nonNull := false
	if nn, ok := t.(*gql.NonNull); ok {
		nonNull, t = true, nn.OfType
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Func {
		return errGiveUp // a thunk
	}
	if nullish(rv) {
		if nonNull {
			return errGiveUp
		}
		e.buf = append(e.buf, "null"...)
		return nil
	}
	switch t := t.(type) {
	case *gql.Scalar:
		if s, ok := v.(string); ok && (t == gql.String || t == gql.ID) {
			// graphql-go serializes both with fmt.Sprintf("%v", v), which gives a string back unchanged (and costs
			// two allocations per field of every object in a large page); a string is never null
			e.buf = appendJSONString(e.buf, s)
			return nil
		}
		return e.leaf(t.Serialize(v), nonNull)
	case *gql.Enum:
		return e.leaf(t.Serialize(v), nonNull)
	case *gql.List:
		if rv.Kind() == reflect.Pointer {
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return errGiveUp
		}
		// An element that is a struct is given to the resolvers as a pointer into the list: Interface() would copy
		// each one to the heap. Every resolver takes a source as T or *T alike (sourceAs).
		_, ofObjects := unwrapNonNull(t.OfType).(*gql.Object)
		byPointer := ofObjects && rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Struct
		e.buf = append(e.buf, '[')
		for i := range rv.Len() {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			el := rv.Index(i)
			if byPointer {
				el = el.Addr()
			}
			if err := e.value(t.OfType, fa, el.Interface()); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return nil
	case *gql.Object:
		return e.object(t, fa.SelectionSet, v)
	}
	return errGiveUp
}

func unwrapNonNull(t gql.Type) gql.Type {
	if nn, ok := t.(*gql.NonNull); ok {
		return nn.OfType
	}
	return t
}

// nullish is graphql-go's test for a value it completes as null: nil, a nil pointer, NaN.
func nullish(rv reflect.Value) bool {
	if !rv.IsValid() {
		return true
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return true
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.IsNaN(rv.Float())
	}
	return false
}

// leaf writes a serialized scalar or enum value; null-ish is null.
func (e *fastExec) leaf(v any, nonNull bool) error {
	if nullish(reflect.ValueOf(v)) {
		if nonNull {
			return errGiveUp
		}
		e.buf = append(e.buf, "null"...)
		return nil
	}
	var err error
	switch x := v.(type) {
	case string:
		e.buf = appendJSONString(e.buf, x)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	default:
		e.buf, err = appendMarshal(e.buf, v)
	}
	if err != nil {
		return errGiveUp
	}
	return nil
}

func appendMarshal(buf []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	return append(buf, b...), nil
}

// appendJSONString appends s as encoding/json writes it: printable ASCII other than the characters it escapes
// directly, anything else through encoding/json itself.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
