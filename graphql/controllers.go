package graphql

import (
	"context"

	gql "github.com/graphql-go/graphql"

	"portmirror/model"
)

// controllers adds the controllers' cluster to the schema (API.md, "Several controllers, one leader"):
// ControllerRole, ControllerNode, Query.controllerNodes, Mutation.addControllerNode and removeControllerNode.
func (b *builder) controllers() {
	role := gql.NewEnum(gql.EnumConfig{
		Name:        "ControllerRole",
		Description: "A controller's part in the cluster, as the answering controller sees it.",
		Values: gql.EnumValueConfigMap{
			"LEADER":      {Value: "LEADER", Description: "commits every change and programs every switch (their OpenFlow MASTER)"},
			"FOLLOWER":    {Value: "FOLLOWER", Description: "holds a copy of the state, forwards requests to the leader, ready to take over"},
			"CANDIDATE":   {Value: "CANDIDATE", Description: "asking the others to elect it"},
			"UNREACHABLE": {Value: "UNREACHABLE", Description: "the answering controller has lost contact with it"},
		},
	})
	for _, v := range role.Values() {
		role.Serialize(v.Value)
		role.ParseValue(v.Name)
	}
	node := gql.NewObject(gql.ObjectConfig{
		Name:        "ControllerNode",
		Description: "One controller of the cluster.",
		Fields: gql.Fields{
			"id":              plain(nn(gql.ID), "its --node-id", func(n model.ControllerNode) any { return n.ID }),
			"raftAddress":     plain(nn(gql.String), "where the others replicate to it (--raft-listen)", func(n model.ControllerNode) any { return n.RaftAddress }),
			"apiAddress":      plain(gql.String, "its API (--api-advertise), as it published it", func(n model.ControllerNode) any { return optString(n.APIAddress) }),
			"openflowAddress": plain(gql.String, "the OpenFlow target bridges connect to (--openflow-advertise)", func(n model.ControllerNode) any { return optString(n.OpenFlowAddress) }),
			"role":            plain(nn(role), "as the answering controller sees it", func(n model.ControllerNode) any { return n.Role }),
			"self":            plain(nn(gql.Boolean), "the controller the request was sent to", func(n model.ControllerNode) any { return n.Self }),
			"lastContact": plain(b.timeT, "when the answering controller last heard from it", func(n model.ControllerNode) any {
				if n.LastContact == nil {
					return nil
				}
				return *n.LastContact
			}),
		},
	})
	ops := b.ops
	b.query.AddFieldConfig("controllerNodes", root(listOf(node), "every controller of the cluster; empty for a controller that runs alone", nil,
		func(ctx context.Context, _ map[string]any) (any, error) { return ops.ControllerNodes(ctx) }))
	b.mutation.AddFieldConfig("addControllerNode", root(nn(node),
		"adds a controller as a voting member; start it first with --node-id, --raft-listen and a new data directory (admin only, audited)",
		gql.FieldConfigArgument{"id": {Type: nn(gql.ID)}, "raftAddress": {Type: nn(gql.String)}},
		func(ctx context.Context, a map[string]any) (any, error) {
			return ops.AddControllerNode(ctx, argString(a, "id"), argString(a, "raftAddress"))
		}))
	b.mutation.AddFieldConfig("removeControllerNode", root(nn(gql.ID), "removes a controller from the cluster (admin only, audited)",
		gql.FieldConfigArgument{"id": {Type: nn(gql.ID)}},
		func(ctx context.Context, a map[string]any) (any, error) {
			id := argString(a, "id")
			if err := ops.RemoveControllerNode(ctx, id); err != nil {
				return nil, err
			}
			return id, nil
		}))
}
