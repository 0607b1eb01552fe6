package graphql

import (
	"context"

	gql "github.com/graphql-go/graphql"

	"portmirror/service"
)

// bulk adds the bulk inventory mutations (docs/api.md, "Bulk inventory"): Mutation.registerHosts and
// createVmInstances, answering an InventoryBulkResult.
func (b *builder) bulk() {
	result := gql.NewObject(gql.ObjectConfig{
		Name:        "InventoryBulkResult",
		Description: "What one bulk inventory call did; the whole call is one atomic change with one audit event.",
		Fields: gql.Fields{
			"uuids":     plainBulk(listOf(gql.ID), "the uuid of every entry, in the order of the input (generated ones included)", func(r service.BulkResult) any { return r.UUIDs }),
			"count":     plainBulk(nn(gql.Int), "entries in the call", func(r service.BulkResult) any { return len(r.UUIDs) }),
			"created":   plainBulk(nn(gql.Int), "entries that created an object", func(r service.BulkResult) any { return r.Created }),
			"updated":   plainBulk(nn(gql.Int), "entries that changed an existing object", func(r service.BulkResult) any { return r.Updated }),
			"unchanged": plainBulk(nn(gql.Int), "entries that named an existing object exactly as it is", func(r service.BulkResult) any { return r.Unchanged }),
		},
	})
	ops := b.ops
	b.mutation.AddFieldConfig("registerHosts", root(nn(result),
		"registers or updates (by uuid) up to 2000 hosts in one atomic call; one refused entry refuses the call",
		gql.FieldConfigArgument{"input": {Type: listOf(b.hostIn)}},
		func(ctx context.Context, a map[string]any) (any, error) {
			var hs []service.HostInput
			for _, e := range argList(a, "input") {
				m, _ := e.(map[string]any)
				hs = append(hs, service.HostInput{
					UUID: argString(m, "uuid"), Name: argString(m, "name"), ClusterUUID: argString(m, "clusterUuid"),
					ManagementIP: argString(m, "managementIp"), OVSDBAddress: argString(m, "ovsdbAddress"),
					Bridge: argString(m, "bridge"), DatapathID: argString(m, "datapathId"),
				})
			}
			return ops.RegisterHosts(ctx, hs)
		}))
	b.mutation.AddFieldConfig("createVmInstances", root(nn(result),
		"creates or updates (by uuid) up to 2000 VM instances with their NICs in one atomic call; one refused entry refuses the call",
		gql.FieldConfigArgument{"input": {Type: listOf(b.vmIn)}},
		func(ctx context.Context, a map[string]any) (any, error) {
			var vms []service.VmInstanceInput
			for _, e := range argList(a, "input") {
				m, _ := e.(map[string]any)
				vi := service.VmInstanceInput{UUID: argString(m, "uuid"), Name: argString(m, "name"), HostUUID: argString(m, "hostUuid")}
				for _, n := range argList(m, "nics") {
					nm, _ := n.(map[string]any)
					vi.Nics = append(vi.Nics, service.VmNicInput{
						UUID: argString(nm, "uuid"), MAC: argString(nm, "mac"), IP: argString(nm, "ip"),
						L3NetworkUUID: argString(nm, "l3NetworkUuid"), IsDefault: argBool(nm, "isDefault"),
						PortName: argString(nm, "portName"), QoS: qosInput(nm["qos"]),
					})
				}
				vms = append(vms, vi)
			}
			return ops.CreateVmInstances(ctx, vms)
		}))
}

// plainBulk is a field of an InventoryBulkResult.
func plainBulk(t gql.Output, desc string, get func(service.BulkResult) any) *gql.Field {
	return &gql.Field{Type: t, Description: desc, Resolve: func(p gql.ResolveParams) (any, error) {
		r, err := sourceAs[service.BulkResult](p.Source)
		if err != nil {
			return nil, err
		}
		return get(r), nil
	}}
}
