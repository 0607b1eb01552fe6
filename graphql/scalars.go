package graphql

import (
	"time"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"
)

// newTimeScalar is the Time scalar: RFC 3339 with nanoseconds, in UTC.
func newTimeScalar() *gql.Scalar {
	serialize := func(v any) any {
		if p, ok := v.(*time.Time); ok && p != nil {
			v = *p
		}
		t, ok := v.(time.Time)
		if !ok || t.IsZero() {
			return nil
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	parse := func(v any) any {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil
		}
		return t.UTC()
	}
	return gql.NewScalar(gql.ScalarConfig{
		Name:        "Time",
		Description: "A point in time as an RFC 3339 string, e.g. 2025-01-31T12:00:00Z; the API answers in UTC.",
		Serialize:   serialize,
		ParseValue:  parse,
		ParseLiteral: func(v ast.Value) any {
			if s, ok := v.(*ast.StringValue); ok {
				return parse(s.Value)
			}
			return nil
		},
	})
}
