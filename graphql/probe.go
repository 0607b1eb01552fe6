package graphql

import (
	"context"

	gql "github.com/graphql-go/graphql"

	"portmirror/model"
	"portmirror/service"
)

// probeResultType is API.md's ProbeResult.
func probeResultType() *gql.Object {
	return gql.NewObject(gql.ObjectConfig{Name: "ProbeResult", Fields: gql.Fields{
		"delivered": plain(nn(gql.Boolean), "a marked frame injected at the source port was caught at the destination's bridge",
			func(r model.ProbeResult) any { return r.Delivered }),
		"latencyMs": plain(gql.Float, "from the injection of the frame that arrived to its capture; null when not delivered",
			func(r model.ProbeResult) any {
				if r.LatencyMs == nil {
					return nil
				}
				return *r.LatencyMs
			}),
		"path": plain(listOf(gql.String), `e.g. "hv1 br-int port 5 (source)", "GRE key 7 to 198.18.0.2", "hv2 br-int tunnel port 3"`,
			func(r model.ProbeResult) any { return r.Path }),
		"reason": plain(gql.String, "why not delivered, naming the switch, port or flow that is missing",
			func(r model.ProbeResult) any {
				if r.Reason == "" {
					return nil
				}
				return r.Reason
			}),
	}})
}

// probeMutation is probePortMirrorSession.
func probeMutation(ops service.Operations) *gql.Field {
	return root(nn(probeResultType()), "injects a marked frame at the session's source port and catches it at the destination's "+
		"bridge (the monitoring VM never receives it); audited", uuidArg(),
		func(ctx context.Context, a map[string]any) (any, error) {
			return ops.ProbePortMirrorSession(ctx, argString(a, "uuid"))
		})
}
