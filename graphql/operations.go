package graphql

import (
	"context"
	"time"

	gql "github.com/graphql-go/graphql"

	"portmirror/model"
	"portmirror/service"
)

func (b *builder) inputs() {
	str, id, boolean, integer := gql.String, gql.ID, gql.Boolean, gql.Int
	b.qosIn = gql.NewInputObject(gql.InputObjectConfig{Name: "NicQosInput", Fields: gql.InputObjectConfigFieldMap{
		"inboundBandwidthBps":  {Type: integer},
		"outboundBandwidthBps": {Type: integer},
	}})
	b.nicIn = gql.NewInputObject(gql.InputObjectConfig{Name: "VmNicInput", Fields: gql.InputObjectConfigFieldMap{
		"uuid":          {Type: id},
		"mac":           {Type: nn(str)},
		"ip":            {Type: str},
		"l3NetworkUuid": {Type: str},
		"isDefault":     {Type: boolean, DefaultValue: false},
		"portName":      {Type: str},
		"qos":           {Type: b.qosIn},
	}})
	b.clusterIn = gql.NewInputObject(gql.InputObjectConfig{Name: "ClusterInput", Fields: gql.InputObjectConfigFieldMap{
		"uuid": {Type: id},
		"name": {Type: nn(str)},
	}})
	b.hostIn = gql.NewInputObject(gql.InputObjectConfig{Name: "HostInput", Fields: gql.InputObjectConfigFieldMap{
		"uuid":         {Type: id},
		"name":         {Type: nn(str)},
		"clusterUuid":  {Type: nn(id)},
		"managementIp": {Type: str},
		"ovsdbAddress": {Type: str},
		"bridge":       {Type: str, DefaultValue: model.DefaultBridge},
		"datapathId":   {Type: str},
	}})
	b.vmIn = gql.NewInputObject(gql.InputObjectConfig{Name: "VmInstanceInput", Fields: gql.InputObjectConfigFieldMap{
		"uuid":     {Type: id},
		"name":     {Type: nn(str)},
		"hostUuid": {Type: nn(id)},
		"nics":     {Type: listOf(b.nicIn)},
	}})
	b.flowNetIn = gql.NewInputObject(gql.InputObjectConfig{Name: "FlowNetworkInput", Fields: gql.InputObjectConfigFieldMap{
		"uuid":          {Type: id},
		"name":          {Type: nn(str)},
		"description":   {Type: str},
		"cidr":          {Type: nn(str)},
		"encapsulation": {Type: b.encap, DefaultValue: model.GRE},
		"clusterUuids":  {Type: gql.NewList(nn(id))},
	}})
	b.filterAction = gql.NewEnum(gql.EnumConfig{Name: "FilterAction", Values: gql.EnumValueConfigMap{
		"ACCEPT": {Value: model.FilterAccept, Description: "copy the frames the rule matches"},
		"REJECT": {Value: model.FilterReject, Description: "do not copy them"},
	}})
	ruleField := func(get func(model.FilterRule) string) *gql.Field {
		return plain(str, "", func(r model.FilterRule) any { return optString(get(r)) })
	}
	b.filterRule = gql.NewObject(gql.ObjectConfig{Name: "MirrorFilterRule", Fields: gql.Fields{
		"action":           plain(nn(b.filterAction), "", func(r model.FilterRule) any { return r.Action }),
		"protocol":         ruleField(func(r model.FilterRule) string { return r.Protocol }),
		"sourceCidr":       ruleField(func(r model.FilterRule) string { return r.SourceCIDR }),
		"destinationCidr":  ruleField(func(r model.FilterRule) string { return r.DestinationCIDR }),
		"sourcePorts":      ruleField(func(r model.FilterRule) string { return r.SourcePorts }),
		"destinationPorts": ruleField(func(r model.FilterRule) string { return r.DestinationPorts }),
	}})
	b.filterRuleIn = gql.NewInputObject(gql.InputObjectConfig{Name: "MirrorFilterRuleInput", Fields: gql.InputObjectConfigFieldMap{
		"action":           {Type: b.filterAction, DefaultValue: model.FilterAccept},
		"protocol":         {Type: str, Description: `"tcp", "udp", "icmp", "icmpv6", "arp", or an IP protocol number; null: any`},
		"sourceCidr":       {Type: str, Description: "IPv4 or IPv6 CIDR; null: any"},
		"destinationCidr":  {Type: str},
		"sourcePorts":      {Type: str, Description: `"80" or "1024-65535" (tcp and udp only); null: any`},
		"destinationPorts": {Type: str},
	}})
	b.sessionIn = gql.NewInputObject(gql.InputObjectConfig{Name: "SessionInput", Fields: gql.InputObjectConfigFieldMap{
		"name":               {Type: nn(str)},
		"type":               {Type: nn(b.direction)},
		"sourceNicUuid":      {Type: nn(id)},
		"destinationNicUuid": {Type: nn(id)},
		"filters": {Type: gql.NewList(nn(b.filterRuleIn)),
			Description: "ordered; the first rule that matches a frame decides; a frame no rule matches is not copied; empty or null: every frame"},
		"snapLength": {Type: gql.Int, Description: "copies are cut to this many bytes (64..65535); the frame itself is untouched; null: whole"},
		"expiresAt":  {Type: b.timeT, Description: "the session is deleted at this time, audited with the actor \"system\"; must be in the future; null: never"},
	}})
	b.sessionUpdateIn = gql.NewInputObject(gql.InputObjectConfig{Name: "SessionUpdateInput", Fields: gql.InputObjectConfigFieldMap{
		"name":       {Type: str},
		"filters":    {Type: gql.NewList(nn(b.filterRuleIn)), Description: "replaces the filter; an empty list or null clears it"},
		"snapLength": {Type: gql.Int, Description: "null: whole frames again"},
		"expiresAt":  {Type: b.timeT, Description: "a new expiry (in the future); null: the session no longer expires"},
	}})
	b.pmIn = gql.NewInputObject(gql.InputObjectConfig{Name: "PortMirrorInput", Fields: gql.InputObjectConfigFieldMap{
		"name":            {Type: nn(str)},
		"description":     {Type: str},
		"flowNetworkUuid": {Type: nn(id)},
		"enable":          {Type: boolean, DefaultValue: false, Description: "enable immediately"},
		"sessions":        {Type: gql.NewList(nn(b.sessionIn)), Description: "add sessions immediately (all or nothing)"},
	}})
}

// root is a root field: its resolver gets the context and the arguments and calls the service.
func root(t gql.Output, desc string, args gql.FieldConfigArgument, fn func(ctx context.Context, args map[string]any) (any, error)) *gql.Field {
	return &gql.Field{Type: t, Description: desc, Args: args, Resolve: func(p gql.ResolveParams) (any, error) {
		r, err := fn(p.Context, p.Args)
		if err != nil {
			return nil, toAPIError(p.Context, p.Info.FieldName, err)
		}
		return r, nil
	}}
}

func uuidArg() gql.FieldConfigArgument {
	return gql.FieldConfigArgument{"uuid": {Type: nn(gql.ID)}}
}

func (b *builder) queryType() *gql.Object {
	ops := b.ops
	fields := gql.Fields{
		"clusters": root(listOf(b.cluster), "", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.Clusters(ctx)
		}),
		"cluster": root(b.cluster, "null when the uuid names no cluster", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.Cluster(ctx, argString(a, "uuid")))
		}),
		"hosts": root(listOf(b.host), "", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.Hosts(ctx)
		}),
		"host": root(b.host, "null when the uuid names no host", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.Host(ctx, argString(a, "uuid")))
		}),
		"vmInstances": root(listOf(b.vm), "", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.VmInstances(ctx)
		}),
		"vmInstance": root(b.vm, "null when the uuid names no VM", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.VmInstance(ctx, argString(a, "uuid")))
		}),
		"vmNic": root(b.nic, "null when the uuid names no NIC", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.VmNic(ctx, argString(a, "uuid")))
		}),
		"flowNetworks": root(listOf(b.flowNet), "", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.FlowNetworks(ctx)
		}),
		"flowNetwork": root(b.flowNet, "null when the uuid names no flow network", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.FlowNetwork(ctx, argString(a, "uuid")))
		}),
		"portMirrors": root(listOf(b.pm), "", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.PortMirrors(ctx)
		}),
		"portMirror": root(b.pm, "null when the uuid names no port mirror", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.PortMirror(ctx, argString(a, "uuid")))
		}),
		"portMirrorSession": root(b.session, "null when the uuid names no session", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return orNull(ops.Session(ctx, argString(a, "uuid")))
		}),
		"switches": root(listOf(b.swtch), "every bridge that is or was connected", nil, func(ctx context.Context, _ map[string]any) (any, error) {
			return ops.Switches(ctx), nil
		}),
		"audits": root(listOf(b.audit),
			"audit events, newest first; resourceUuid selects the events about it and what it holds; "+
				"after is the id of the last event of the previous page",
			gql.FieldConfigArgument{
				"resourceUuid": {Type: gql.ID},
				"operation":    {Type: gql.String},
				"since":        {Type: b.timeT},
				"until":        {Type: b.timeT},
				"first":        {Type: gql.Int, DefaultValue: 100},
				"after":        {Type: gql.ID},
			},
			func(ctx context.Context, a map[string]any) (any, error) {
				first, err := firstArg(a, 100)
				if err != nil {
					return nil, err
				}
				q := service.AuditQuery{
					ResourceUUID: argString(a, "resourceUuid"),
					Operation:    argString(a, "operation"),
					Actor:        argString(a, "actor"),
					ResourceType: argString(a, "resourceType"),
					First:        first,
					After:        argString(a, "after"),
				}
				q.Since, _ = a["since"].(time.Time)
				q.Until, _ = a["until"].(time.Time)
				return ops.Audits(ctx, q)
			}),
	}
	b.consoleQueries(fields)
	return gql.NewObject(gql.ObjectConfig{Name: "Query", Fields: fields})
}

func (b *builder) mutationType() *gql.Object {
	ops := b.ops
	in := func(t gql.Input) gql.FieldConfigArgument { return gql.FieldConfigArgument{"input": {Type: nn(t)}} }
	ids := func(names ...string) gql.FieldConfigArgument {
		a := gql.FieldConfigArgument{}
		for _, n := range names {
			a[n] = &gql.ArgumentConfig{Type: nn(gql.ID)}
		}
		return a
	}
	deleted := func(fn func(context.Context, string) error) func(context.Context, map[string]any) (any, error) {
		return func(ctx context.Context, a map[string]any) (any, error) {
			u := argString(a, "uuid")
			if err := fn(ctx, u); err != nil {
				return nil, err
			}
			return u, nil
		}
	}
	return gql.NewObject(gql.ObjectConfig{Name: "Mutation", Fields: gql.Fields{
		"createCluster": root(nn(b.cluster), "", in(b.clusterIn), func(ctx context.Context, a map[string]any) (any, error) {
			m := argObject(a, "input")
			return ops.CreateCluster(ctx, service.ClusterInput{UUID: argString(m, "uuid"), Name: argString(m, "name")})
		}),
		"registerHost": root(nn(b.host), "", in(b.hostIn), func(ctx context.Context, a map[string]any) (any, error) {
			m := argObject(a, "input")
			return ops.RegisterHost(ctx, service.HostInput{
				UUID: argString(m, "uuid"), Name: argString(m, "name"), ClusterUUID: argString(m, "clusterUuid"),
				ManagementIP: argString(m, "managementIp"), OVSDBAddress: argString(m, "ovsdbAddress"),
				Bridge: argString(m, "bridge"), DatapathID: argString(m, "datapathId"),
			})
		}),
		"deleteHost": root(nn(gql.ID), "refused with IN_USE while a session uses a NIC of a VM on it", uuidArg(), deleted(ops.DeleteHost)),
		"createVmInstance": root(nn(b.vm), "", in(b.vmIn), func(ctx context.Context, a map[string]any) (any, error) {
			m := argObject(a, "input")
			vi := service.VmInstanceInput{UUID: argString(m, "uuid"), Name: argString(m, "name"), HostUUID: argString(m, "hostUuid")}
			for _, n := range argList(m, "nics") {
				nm, _ := n.(map[string]any)
				vi.Nics = append(vi.Nics, service.VmNicInput{
					UUID: argString(nm, "uuid"), MAC: argString(nm, "mac"), IP: argString(nm, "ip"),
					L3NetworkUUID: argString(nm, "l3NetworkUuid"), IsDefault: argBool(nm, "isDefault"),
					PortName: argString(nm, "portName"), QoS: qosInput(nm["qos"]),
				})
			}
			return ops.CreateVmInstance(ctx, vi)
		}),
		"migrateVmInstance": root(nn(b.vm), "", ids("uuid", "hostUuid"), func(ctx context.Context, a map[string]any) (any, error) {
			return ops.MigrateVmInstance(ctx, argString(a, "uuid"), argString(a, "hostUuid"))
		}),
		"deleteVmInstance": root(nn(gql.ID), "refused with IN_USE while a session uses one of its NICs", uuidArg(), deleted(ops.DeleteVmInstance)),
		"setVmNicQos": root(nn(b.nic), "null clears it",
			gql.FieldConfigArgument{"nicUuid": {Type: nn(gql.ID)}, "qos": {Type: b.qosIn}},
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.SetVmNicQos(ctx, argString(a, "nicUuid"), qosInput(a["qos"]))
			}),

		"createFlowNetwork": root(nn(b.flowNet), "", in(b.flowNetIn), func(ctx context.Context, a map[string]any) (any, error) {
			m := argObject(a, "input")
			fi := service.FlowNetworkInput{
				UUID: argString(m, "uuid"), Name: argString(m, "name"), Description: argString(m, "description"),
				CIDR: argString(m, "cidr"),
			}
			if e, ok := m["encapsulation"].(model.Encapsulation); ok {
				fi.Encapsulation = e
			}
			for _, c := range argList(m, "clusterUuids") {
				s, _ := c.(string)
				fi.ClusterUUIDs = append(fi.ClusterUUIDs, s)
			}
			return ops.CreateFlowNetwork(ctx, fi)
		}),
		"attachFlowNetworkToCluster": root(nn(b.flowNet), "", ids("flowNetworkUuid", "clusterUuid"),
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.AttachFlowNetworkToCluster(ctx, argString(a, "flowNetworkUuid"), argString(a, "clusterUuid"))
			}),
		"detachFlowNetworkFromCluster": root(nn(b.flowNet), "", ids("flowNetworkUuid", "clusterUuid"),
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.DetachFlowNetworkFromCluster(ctx, argString(a, "flowNetworkUuid"), argString(a, "clusterUuid"))
			}),
		"setFlowEndpoint": root(nn(b.endpoint), "otherwise allocated from the flow network's cidr",
			gql.FieldConfigArgument{"flowNetworkUuid": {Type: nn(gql.ID)}, "hostUuid": {Type: nn(gql.ID)}, "ip": {Type: nn(gql.String)}},
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.SetFlowEndpoint(ctx, argString(a, "flowNetworkUuid"), argString(a, "hostUuid"), argString(a, "ip"))
			}),
		"deleteFlowNetwork": root(nn(gql.ID), "refused with FLOW_NETWORK_IN_USE while a port mirror occupies it", uuidArg(), deleted(ops.DeleteFlowNetwork)),

		"createPortMirror": root(nn(b.pm), "enable: enable immediately; sessions: add sessions immediately (all or nothing)", in(b.pmIn),
			func(ctx context.Context, a map[string]any) (any, error) {
				m := argObject(a, "input")
				pi := service.PortMirrorInput{
					Name: argString(m, "name"), Description: argString(m, "description"),
					FlowNetworkUUID: argString(m, "flowNetworkUuid"), Enable: argBool(m, "enable"),
				}
				for _, s := range argList(m, "sessions") {
					sm, _ := s.(map[string]any)
					pi.Sessions = append(pi.Sessions, sessionInput(sm))
				}
				return ops.CreatePortMirror(ctx, pi)
			}),
		"updatePortMirror": root(nn(b.pm), "changes the name and/or description; an absent argument is left as it is",
			gql.FieldConfigArgument{"uuid": {Type: nn(gql.ID)}, "name": {Type: gql.String}, "description": {Type: gql.String}},
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.UpdatePortMirror(ctx, argString(a, "uuid"), argStringPtr(a, "name"), argStringPtr(a, "description"))
			}),
		"enablePortMirror": root(nn(b.pm), "", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return ops.EnablePortMirror(ctx, argString(a, "uuid"))
		}),
		"disablePortMirror": root(nn(b.pm), "", uuidArg(), func(ctx context.Context, a map[string]any) (any, error) {
			return ops.DisablePortMirror(ctx, argString(a, "uuid"))
		}),
		"deletePortMirror": root(nn(gql.ID), "removes its sessions and every flow they installed", uuidArg(), deleted(ops.DeletePortMirror)),
		"addPortMirrorSession": root(nn(b.session), "",
			gql.FieldConfigArgument{"portMirrorUuid": {Type: nn(gql.ID)}, "input": {Type: nn(b.sessionIn)}},
			func(ctx context.Context, a map[string]any) (any, error) {
				return ops.AddPortMirrorSession(ctx, argString(a, "portMirrorUuid"), sessionInput(argObject(a, "input")))
			}),
		"deletePortMirrorSession": root(nn(gql.ID), "", uuidArg(), deleted(ops.DeletePortMirrorSession)),
		"probePortMirrorSession":  probeMutation(ops),
		"updatePortMirrorSession": {Type: nn(b.session),
			Description: "changes a session in place: a field left out stays, an explicit null clears it; PENDING until the switches confirm",
			Args:        gql.FieldConfigArgument{"uuid": {Type: nn(gql.ID)}, "input": {Type: nn(b.sessionUpdateIn)}},
			Resolve: func(p gql.ResolveParams) (any, error) {
				// graphql-go drops null fields of input objects: what the caller wrote is read from the document
				// and the raw variables.
				raw := map[string]any{}
				if len(p.Info.FieldASTs) > 0 {
					for _, a := range p.Info.FieldASTs[0].Arguments {
						if a != nil && a.Name != nil && a.Name.Value == "input" {
							raw, _ = plainValue(a.Value, requestInfoFrom(p.Context).vars).(map[string]any)
						}
					}
				}
				m := argObject(p.Args, "input")
				var up service.SessionUpdate
				if v, given := raw["name"]; given {
					if v == nil {
						up.NameCleared = true
					} else {
						up.Name = argStringPtr(m, "name")
					}
				}
				if _, given := raw["snapLength"]; given {
					up.SnapLengthSet = true
					if n, ok := m["snapLength"].(int); ok {
						up.SnapLength = &n
					}
				}
				if _, given := raw["expiresAt"]; given {
					up.ExpiresAtSet = true
					if t, ok := m["expiresAt"].(time.Time); ok {
						up.ExpiresAt = &t
					}
				}
				if _, given := raw["filters"]; given {
					rules := filterInputs(argList(m, "filters"))
					up.Filters = &rules
				}
				r, err := ops.UpdatePortMirrorSession(p.Context, argString(p.Args, "uuid"), up)
				if err != nil {
					return nil, toAPIError(p.Context, p.Info.FieldName, err)
				}
				return r, nil
			}},
	}})
}

func sessionInput(m map[string]any) service.SessionInput {
	si := service.SessionInput{
		Name: argString(m, "name"), SourceNicUUID: argString(m, "sourceNicUuid"),
		DestinationNicUUID: argString(m, "destinationNicUuid"),
	}
	si.Type, _ = m["type"].(model.Direction)
	si.Filters = filterInputs(argList(m, "filters"))
	if n, ok := m["snapLength"].(int); ok {
		si.SnapLength = &n
	}
	if t, ok := m["expiresAt"].(time.Time); ok {
		si.ExpiresAt = &t
	}
	return si
}

// filterInputs reads a [MirrorFilterRuleInput!]; the service checks the values.
func filterInputs(l []any) []model.FilterRule {
	var out []model.FilterRule
	for _, x := range l {
		m, _ := x.(map[string]any)
		r := model.FilterRule{Protocol: argString(m, "protocol"), SourceCIDR: argString(m, "sourceCidr"),
			DestinationCIDR: argString(m, "destinationCidr"), SourcePorts: argString(m, "sourcePorts"),
			DestinationPorts: argString(m, "destinationPorts")}
		r.Action, _ = m["action"].(model.FilterAction)
		out = append(out, r)
	}
	return out
}

// qosInput reads a NicQosInput; nil (absent or null) is no QoS. The service checks the values.
func qosInput(v any) *model.NicQoS {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	q := &model.NicQoS{}
	if n, ok := m["inboundBandwidthBps"].(int); ok {
		x := int64(n)
		q.InboundBandwidthBps = &x
	}
	if n, ok := m["outboundBandwidthBps"].(int); ok {
		x := int64(n)
		q.OutboundBandwidthBps = &x
	}
	return q
}

func argString(a map[string]any, k string) string {
	s, _ := a[k].(string)
	return s
}

func argStringPtr(a map[string]any, k string) *string {
	s, ok := a[k].(string)
	if !ok {
		return nil
	}
	return &s
}

func argBool(a map[string]any, k string) bool {
	v, _ := a[k].(bool)
	return v
}

func argObject(a map[string]any, k string) map[string]any {
	m, _ := a[k].(map[string]any)
	return m
}

func argList(a map[string]any, k string) []any {
	l, _ := a[k].([]any)
	return l
}
