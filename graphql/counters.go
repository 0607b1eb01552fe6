package graphql

import (
	"context"
	"math"
	"strconv"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"

	"portmirror/model"
)

// counterOps is what the counters fields need of the backend (the service offers it).
type counterOps interface {
	SessionCounters(ctx context.Context, sessionUUID string) model.SessionCounters
	PortMirrorCounters(ctx context.Context, portMirrorUUID string) (model.SessionCounters, error)
}

// newLongScalar is the Long scalar: a 64-bit count, as a JSON number.
func newLongScalar() *gql.Scalar {
	serialize := func(v any) any {
		switch x := v.(type) {
		case uint64:
			if x > math.MaxInt64 {
				return int64(math.MaxInt64)
			}
			return int64(x)
		case int64:
			return x
		case int:
			return int64(x)
		}
		return nil
	}
	return gql.NewScalar(gql.ScalarConfig{
		Name:        "Long",
		Description: "A 64-bit count, as a JSON number.",
		Serialize:   serialize,
		ParseValue:  serialize,
		ParseLiteral: func(v ast.Value) any {
			if s, ok := v.(*ast.IntValue); ok {
				if n, err := strconv.ParseInt(s.Value, 10, 64); err == nil {
					return n
				}
			}
			return nil
		},
	})
}

// countersType is SessionCounters.
func (b *builder) countersType() *gql.Object {
	long := newLongScalar()
	return gql.NewObject(gql.ObjectConfig{Name: "SessionCounters", Fields: gql.Fields{
		"packets": plain(nn(long), "copies the session selected, counted on the switch",
			func(c model.SessionCounters) any { return c.Packets }),
		"bytes": plain(nn(long), "their bytes, before truncation",
			func(c model.SessionCounters) any { return c.Bytes }),
		"droppedByLimit": plain(nn(long), "copies dropped by bandwidthLimitKbps",
			func(c model.SessionCounters) any { return c.DroppedByLimit }),
		"updatedAt": plain(b.timeT, "when the switch was last read; null before the first read",
			func(c model.SessionCounters) any { return optTime(c.UpdatedAt) }),
	}})
}

// sessionCounters is PortMirrorSession.counters.
func (b *builder) sessionCounters(t *gql.Object) *gql.Field {
	return linked(nn(t), "what its switches counted", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
		if co, ok := b.ops.(counterOps); ok {
			return co.SessionCounters(ctx, s.UUID), nil
		}
		return model.SessionCounters{}, nil
	})
}

// portMirrorCounters is PortMirror.counters.
func (b *builder) portMirrorCounters(t *gql.Object) *gql.Field {
	return linked(nn(t), "the sum over its sessions", func(ctx context.Context, m model.PortMirror, _ map[string]any) (any, error) {
		if co, ok := b.ops.(counterOps); ok {
			return co.PortMirrorCounters(ctx, m.UUID)
		}
		return model.SessionCounters{}, nil
	})
}
