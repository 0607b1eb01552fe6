package graphql

import (
	"context"
	"errors"
	"fmt"
	"time"

	gql "github.com/graphql-go/graphql"

	"portmirror/model"
	"portmirror/service"
)

// NewSchema builds the schema of API.md with resolvers that call ops.
func NewSchema(ops service.Operations) (gql.Schema, error) {
	b := &builder{ops: ops}
	b.build()
	schema, err := gql.NewSchema(gql.SchemaConfig{Query: b.query, Mutation: b.mutation})
	if err != nil {
		return gql.Schema{}, fmt.Errorf("graphql schema: %w", err)
	}
	// graphql-go fills an enum's lookup maps on first use, unguarded; fill them now, before requests run
	// concurrently.
	for _, e := range append([]*gql.Enum{b.direction, b.state, b.status, b.encap}, b.enumsToFill...) {
		for _, v := range e.Values() {
			e.Serialize(v.Value)
			e.ParseValue(v.Name)
		}
	}
	return schema, nil
}

type builder struct {
	ops service.Operations

	timeT                                    *gql.Scalar
	direction, state, status, encap          *gql.Enum
	cluster, host, endpoint, vm, nic, qos    *gql.Object
	port, flowNet, pm, session, audit, swtch *gql.Object
	qosIn, nicIn, clusterIn, hostIn, vmIn    *gql.InputObject
	flowNetIn, sessionIn, pmIn               *gql.InputObject
	filterAction                             *gql.Enum
	filterRule                               *gql.Object
	filterRuleIn, sessionUpdateIn            *gql.InputObject
	query, mutation                          *gql.Object
	enumsToFill                              []*gql.Enum // enums made elsewhere than enums()
}

// sourceAs returns a resolver's source as T, whether it was stored as T or *T.
func sourceAs[T any](s any) (T, error) {
	switch v := s.(type) {
	case T:
		return v, nil
	case *T:
		if v != nil {
			return *v, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("graphql: resolver source is %T, want %T", s, zero)
}

// plain is a field computed from its source alone.
func plain[T any](t gql.Output, desc string, get func(T) any) *gql.Field {
	return &gql.Field{Type: t, Description: desc, Resolve: func(p gql.ResolveParams) (any, error) {
		v, err := sourceAs[T](p.Source)
		if err != nil {
			return nil, err
		}
		return get(v), nil
	}}
}

// linked is a field that asks the service; its errors become API errors.
func linked[T any](t gql.Output, desc string, get func(ctx context.Context, v T, args map[string]any) (any, error)) *gql.Field {
	return &gql.Field{Type: t, Description: desc, Resolve: func(p gql.ResolveParams) (any, error) {
		v, err := sourceAs[T](p.Source)
		if err != nil {
			return nil, err
		}
		r, err := get(p.Context, v, p.Args)
		if err != nil {
			return nil, toAPIError(p.Context, p.Info.ParentType.Name()+"."+p.Info.FieldName, err)
		}
		return r, nil
	}}
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nn(t gql.Type) *gql.NonNull     { return gql.NewNonNull(t) }
func listOf(t gql.Type) *gql.NonNull { return gql.NewNonNull(gql.NewList(gql.NewNonNull(t))) }

// orNull turns NOT_FOUND into null: a nullable field or getter answers null for a uuid that names nothing.
func orNull[T any](v T, err error) (any, error) {
	if err != nil {
		var se *service.Error
		if errors.As(err, &se) && se.Code == service.CodeNotFound {
			return nil, nil
		}
		return nil, err
	}
	return v, nil
}

func (b *builder) build() {
	b.timeT = newTimeScalar()
	b.enums()
	b.objects()
	b.inputs()
	b.query = b.queryType()
	b.mutation = b.mutationType()
	b.controllers()
	b.bulk()
}

func (b *builder) enums() {
	b.direction = gql.NewEnum(gql.EnumConfig{
		Name:        "MirrorDirection",
		Description: "Which frames of the source NIC a session copies.",
		Values: gql.EnumValueConfigMap{
			"INGRESS":     {Value: model.Ingress, Description: "frames the switch delivers to the source NIC (traffic entering the VM)"},
			"EGRESS":      {Value: model.Egress, Description: "frames the source NIC sends (traffic leaving the VM)"},
			"BIDIRECTION": {Value: model.Bidirection, Description: "both"},
		},
	})
	b.state = gql.NewEnum(gql.EnumConfig{
		Name: "PortMirrorState",
		Values: gql.EnumValueConfigMap{
			"ENABLED":  {Value: model.Enabled},
			"DISABLED": {Value: model.Disabled},
		},
	})
	b.status = gql.NewEnum(gql.EnumConfig{
		Name: "SessionStatus",
		Values: gql.EnumValueConfigMap{
			"ACTIVE":   {Value: model.StatusActive, Description: "every flow the session needs is installed and confirmed on every switch it touches"},
			"INACTIVE": {Value: model.StatusInactive, Description: "the port mirror is disabled"},
			"PENDING":  {Value: model.StatusPending, Description: "not yet confirmed, or a switch or port it needs is absent (statusReason says which)"},
			"ERROR":    {Value: model.StatusError, Description: "a switch refused a flow (statusReason carries the OpenFlow error)"},
		},
	})
	b.encap = gql.NewEnum(gql.EnumConfig{
		Name: "Encapsulation",
		Values: gql.EnumValueConfigMap{
			"GRE":       {Value: model.GRE},
			"VXLAN":     {Value: model.VXLAN},
			"ERSPAN_V1": {Value: model.ERSPANv1, Description: "ERSPAN type II; tunnel keys are the 10-bit session id (1..1023)"},
			"ERSPAN_V2": {Value: model.ERSPANv2, Description: "ERSPAN type III; tunnel keys are the 10-bit session id (1..1023)"},
		},
	})
}

func (b *builder) objects() {
	ops := b.ops
	str, id, boolean, integer := gql.String, gql.ID, gql.Boolean, gql.Int

	b.port = gql.NewObject(gql.ObjectConfig{Name: "SwitchPort", Fields: gql.Fields{
		"datapathId": plain(nn(str), "", func(p model.SwitchPort) any { return p.DatapathID }),
		"portNo": plain(nn(integer), "the OpenFlow port number; reserved numbers above 2^31 (OFPP_LOCAL 0xfffffffe, the bridge's "+
			"own port) do not fit GraphQL's 32-bit Int and are given as their 32-bit two's complement (LOCAL is -2)",
			func(p model.SwitchPort) any { return int64(int32(p.PortNo)) }),
		"name": plain(nn(str), "", func(p model.SwitchPort) any { return p.Name }),
		"up":   plain(nn(boolean), "", func(p model.SwitchPort) any { return p.Up }),
	}})
	b.qos = gql.NewObject(gql.ObjectConfig{Name: "NicQos", Fields: gql.Fields{
		"inboundBandwidthBps":  plain(integer, "", func(q model.NicQoS) any { return optInt(q.InboundBandwidthBps) }),
		"outboundBandwidthBps": plain(integer, "", func(q model.NicQoS) any { return optInt(q.OutboundBandwidthBps) }),
	}})

	b.cluster = gql.NewObject(gql.ObjectConfig{Name: "Cluster", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"uuid":      plain(nn(id), "", func(c model.Cluster) any { return c.UUID }),
			"name":      plain(nn(str), "", func(c model.Cluster) any { return c.Name }),
			"createdAt": plain(b.timeT, "", func(c model.Cluster) any { return optTime(c.CreatedAt) }),
			"hosts": linked(listOf(b.host), "", func(ctx context.Context, c model.Cluster, _ map[string]any) (any, error) {
				return ops.HostsInCluster(ctx, c.UUID)
			}),
			"flowNetworks": linked(listOf(b.flowNet), "the flow networks attached to the cluster",
				func(ctx context.Context, c model.Cluster, _ map[string]any) (any, error) {
					return ops.FlowNetworksOfCluster(ctx, c.UUID)
				}),
		}
	})})

	b.host = gql.NewObject(gql.ObjectConfig{Name: "Host", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"uuid": plain(nn(id), "", func(h model.Host) any { return h.UUID }),
			"name": plain(nn(str), "", func(h model.Host) any { return h.Name }),
			"cluster": linked(nn(b.cluster), "", func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
				return ops.Cluster(ctx, h.ClusterUUID)
			}),
			"managementIp": plain(str, "", func(h model.Host) any { return optString(h.ManagementIP) }),
			"ovsdbAddress": plain(str, `"tcp:IP:PORT", "ssl:IP:PORT" (the controller's --openflow-tls-* files) or "unix:PATH"; when set the controller manages the bridge through OVSDB`,
				func(h model.Host) any { return optString(h.OVSDBAddress) }),
			"bridge": plain(nn(str), `default "br-int"`, func(h model.Host) any { return h.Bridge }),
			"datapathId": linked(str, "16 hex digits, given at registration or learned through OVSDB or the bridge's connection",
				func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
					return optString(b.hostDatapathID(ctx, h)), nil
				}),
			"connected": linked(nn(boolean), "the bridge's OpenFlow connection is up",
				func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
					return ops.HostConnected(ctx, h.UUID), nil
				}),
			"flowEndpoints": linked(listOf(b.endpoint), "", func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
				return ops.FlowEndpointsOfHost(ctx, h.UUID)
			}),
			"vmInstances": linked(listOf(b.vm), "", func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
				return ops.VmInstancesOnHost(ctx, h.UUID)
			}),
			"createdAt": plain(b.timeT, "", func(h model.Host) any { return optTime(h.CreatedAt) }),
			"switch": linked(b.swtch, "the host's bridge as the controller knows it; null before it ever connected",
				func(ctx context.Context, h model.Host, _ map[string]any) (any, error) {
					return b.hostSwitch(ctx, h), nil
				}),
		}
	})})

	b.endpoint = gql.NewObject(gql.ObjectConfig{Name: "FlowEndpoint", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"flowNetwork": linked(nn(b.flowNet), "", func(ctx context.Context, e model.FlowEndpoint, _ map[string]any) (any, error) {
				return ops.FlowNetwork(ctx, e.FlowNetworkUUID)
			}),
			"host": linked(nn(b.host), "", func(ctx context.Context, e model.FlowEndpoint, _ map[string]any) (any, error) {
				return ops.Host(ctx, e.HostUUID)
			}),
			"ip":     plain(nn(str), "", func(e model.FlowEndpoint) any { return e.IP }),
			"manual": plain(nn(boolean), "set by setFlowEndpoint rather than allocated from the cidr", func(e model.FlowEndpoint) any { return e.Manual }),
		}
	})})

	b.vm = gql.NewObject(gql.ObjectConfig{Name: "VmInstance", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"uuid": plain(nn(id), "", func(v model.VmInstance) any { return v.UUID }),
			"name": plain(nn(str), "", func(v model.VmInstance) any { return v.Name }),
			"host": linked(nn(b.host), "", func(ctx context.Context, v model.VmInstance, _ map[string]any) (any, error) {
				return ops.Host(ctx, v.HostUUID)
			}),
			"nics": linked(listOf(b.nic), "", func(ctx context.Context, v model.VmInstance, _ map[string]any) (any, error) {
				return ops.VmNics(ctx, v.UUID)
			}),
			"createdAt": plain(b.timeT, "", func(v model.VmInstance) any { return optTime(v.CreatedAt) }),
		}
	})})

	b.nic = gql.NewObject(gql.ObjectConfig{Name: "VmNic", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"uuid": plain(nn(id), "", func(n model.VmNic) any { return n.UUID }),
			"vmInstance": linked(nn(b.vm), "", func(ctx context.Context, n model.VmNic, _ map[string]any) (any, error) {
				return ops.VmInstance(ctx, n.VmUUID)
			}),
			"mac":           plain(nn(str), "", func(n model.VmNic) any { return n.MAC }),
			"ip":            plain(str, "", func(n model.VmNic) any { return optString(n.IP) }),
			"l3NetworkUuid": plain(str, "", func(n model.VmNic) any { return optString(n.L3NetworkUUID) }),
			"isDefault":     plain(nn(boolean), "the VM's default network NIC", func(n model.VmNic) any { return n.IsDefault }),
			"portName":      plain(str, "binds the NIC by OpenFlow port name on its host's bridge", func(n model.VmNic) any { return optString(n.PortName) }),
			"qos": plain(b.qos, "", func(n model.VmNic) any {
				if !n.QoS.IsSet() {
					return nil
				}
				return *n.QoS
			}),
			"port": linked(b.port, "where the NIC is attached now; null while unbound",
				func(ctx context.Context, n model.VmNic, _ map[string]any) (any, error) {
					if p := ops.NicPort(ctx, n.UUID); p != nil {
						return *p, nil
					}
					return nil, nil
				}),
		}
	})})

	b.flowNet = gql.NewObject(gql.ObjectConfig{Name: "FlowNetwork", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"uuid":          plain(nn(id), "", func(f model.FlowNetwork) any { return f.UUID }),
			"name":          plain(nn(str), "", func(f model.FlowNetwork) any { return f.Name }),
			"description":   plain(str, "", func(f model.FlowNetwork) any { return optString(f.Description) }),
			"cidr":          plain(nn(str), "", func(f model.FlowNetwork) any { return f.CIDR }),
			"encapsulation": plain(nn(b.encap), "", func(f model.FlowNetwork) any { return f.Encapsulation }),
			"clusters": linked(listOf(b.cluster), "", func(ctx context.Context, f model.FlowNetwork, _ map[string]any) (any, error) {
				out := make([]model.Cluster, 0, len(f.ClusterUUIDs))
				for _, u := range f.ClusterUUIDs {
					c, err := ops.Cluster(ctx, u)
					if err != nil {
						return nil, err
					}
					out = append(out, c)
				}
				return out, nil
			}),
			"endpoints": linked(listOf(b.endpoint), "one tunnel endpoint IP per host of the attached clusters",
				func(ctx context.Context, f model.FlowNetwork, _ map[string]any) (any, error) {
					return ops.FlowEndpoints(ctx, f.UUID)
				}),
			"portMirror": linked(b.pm, "the port mirror occupying it, if any",
				func(ctx context.Context, f model.FlowNetwork, _ map[string]any) (any, error) {
					pm, err := ops.PortMirrorOfFlowNetwork(ctx, f.UUID)
					if err != nil || pm == nil {
						return nil, err
					}
					return *pm, nil
				}),
			"tunnelPortName": plain(nn(str), "the name of the flow network's tunnel port on every bridge",
				func(f model.FlowNetwork) any { return model.TunnelPortName(f.UUID) }),
			"createdAt": plain(b.timeT, "", func(f model.FlowNetwork) any { return optTime(f.CreatedAt) }),
		}
	})})

	b.audit = gql.NewObject(gql.ObjectConfig{Name: "AuditEvent", Fields: gql.Fields{
		"id":           plain(nn(id), "sortable: later events have greater ids", func(a model.AuditEvent) any { return a.ID }),
		"time":         plain(nn(b.timeT), "", func(a model.AuditEvent) any { return a.Time }),
		"actor":        plain(nn(str), `token name, "local", or "system" for the controller's own actions`, func(a model.AuditEvent) any { return a.Actor }),
		"operation":    plain(nn(str), `the mutation's name, e.g. "enablePortMirror"`, func(a model.AuditEvent) any { return a.Operation }),
		"resourceType": plain(nn(str), `"PortMirror", "PortMirrorSession", "FlowNetwork", "Host", ...`, func(a model.AuditEvent) any { return a.ResourceType }),
		"resourceUuid": plain(id, "", func(a model.AuditEvent) any { return optString(a.ResourceUUID) }),
		"success":      plain(nn(boolean), "", func(a model.AuditEvent) any { return a.Success }),
		"error":        plain(str, "", func(a model.AuditEvent) any { return optString(a.Error) }),
		"detail":       plain(str, "JSON: the input, and what changed", func(a model.AuditEvent) any { return optString(a.Detail) }),
	}})

	counters := b.countersType()
	statusCounts := gql.NewObject(gql.ObjectConfig{Name: "SessionStatusCounts", Description: "a port mirror's sessions by status",
		Fields: gql.Fields{
			"active":   plain(nn(integer), "", func(c sessionStatusCounts) any { return c.active }),
			"inactive": plain(nn(integer), "", func(c sessionStatusCounts) any { return c.inactive }),
			"pending":  plain(nn(integer), "", func(c sessionStatusCounts) any { return c.pending }),
			"error":    plain(nn(integer), "", func(c sessionStatusCounts) any { return c.error }),
		}})
	b.pm = gql.NewObject(gql.ObjectConfig{Name: "PortMirror", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"counters":    b.portMirrorCounters(counters),
			"uuid":        plain(nn(id), "", func(m model.PortMirror) any { return m.UUID }),
			"name":        plain(nn(str), "", func(m model.PortMirror) any { return m.Name }),
			"description": plain(str, "", func(m model.PortMirror) any { return optString(m.Description) }),
			"flowNetwork": linked(nn(b.flowNet), "", func(ctx context.Context, m model.PortMirror, _ map[string]any) (any, error) {
				return ops.FlowNetwork(ctx, m.FlowNetworkUUID)
			}),
			"state": plain(nn(b.state), "", func(m model.PortMirror) any { return m.State }),
			"sessions": {
				Type: listOf(b.session),
				Description: "in creation order; first and after page them, and without them the list is whole (a list page " +
					"that shows a few sessions of each port mirror asks for sessionCount and sessions(first: N))",
				Args: gql.FieldConfigArgument{
					"first": {Type: gql.Int, Description: "at most this many (0 or more); absent: every session"},
					"after": {Type: gql.ID, Description: "the uuid of the last session of the previous page; absent: from the first session"},
				},
				Resolve: linked(nil, "", func(ctx context.Context, m model.PortMirror, args map[string]any) (any, error) {
					first := -1
					if v, ok := args["first"].(int); ok {
						if v < 0 {
							return nil, invalidArgument(fmt.Sprintf("sessions of port mirror %s (%q): first is %d: it must be 0 or more", m.UUID, m.Name, v))
						}
						first = v
					}
					after := argString(args, "after")
					if first < 0 && after == "" {
						return ops.Sessions(ctx, m.UUID)
					}
					return ops.SessionPage(ctx, m.UUID, first, after)
				}).Resolve,
			},
			"sessionCount": linked(nn(integer), "how many sessions it has (sessions without first lists them all)",
				func(ctx context.Context, m model.PortMirror, _ map[string]any) (any, error) {
					return ops.SessionCount(ctx, m.UUID), nil
				}),
			"sessionStatusCounts": linked(nn(statusCounts), "how many of its sessions have each status (the status of every session is read)",
				func(ctx context.Context, m model.PortMirror, _ map[string]any) (any, error) {
					ss, err := ops.Sessions(ctx, m.UUID)
					if err != nil {
						return nil, err
					}
					var c sessionStatusCounts
					for _, s := range ss {
						st, _ := ops.SessionStatus(ctx, s)
						c.add(st)
					}
					return c, nil
				}),
			"createdAt": plain(nn(b.timeT), "", func(m model.PortMirror) any { return m.CreatedAt }),
			"updatedAt": plain(nn(b.timeT), "", func(m model.PortMirror) any { return m.UpdatedAt }),
			"audits": {
				Type:        listOf(b.audit),
				Description: "the operations done on it and its sessions, newest first",
				Args:        gql.FieldConfigArgument{"first": {Type: gql.Int, DefaultValue: 50}},
				Resolve: linked(nil, "", func(ctx context.Context, m model.PortMirror, args map[string]any) (any, error) {
					first, err := firstArg(args, 50)
					if err != nil {
						return nil, err
					}
					return ops.Audits(ctx, service.AuditQuery{ResourceUUID: m.UUID, First: first})
				}).Resolve,
			},
		}
	})})

	b.session = gql.NewObject(gql.ObjectConfig{Name: "PortMirrorSession", Fields: gql.FieldsThunk(func() gql.Fields {
		return gql.Fields{
			"counters": b.sessionCounters(counters),
			"uuid":     plain(nn(id), "", func(s model.Session) any { return s.UUID }),
			"name":     plain(nn(str), "", func(s model.Session) any { return s.Name }),
			"type":     plain(nn(b.direction), "", func(s model.Session) any { return s.Type }),
			"portMirror": linked(nn(b.pm), "", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
				return ops.PortMirror(ctx, s.PortMirrorUUID)
			}),
			"sourceNic": linked(nn(b.nic), "", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
				return ops.VmNic(ctx, s.SourceNicUUID)
			}),
			"destinationNic": linked(nn(b.nic), "", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
				return ops.VmNic(ctx, s.DestinationNicUUID)
			}),
			"tunnelKey": plain(nn(integer), "the key that copies carry on the flow network", func(s model.Session) any { return int64(s.TunnelKey) }),
			"status": linked(nn(b.status), "", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
				st, _ := ops.SessionStatus(ctx, s)
				return st, nil
			}),
			"statusReason": linked(str, "why the session is PENDING or ERROR", func(ctx context.Context, s model.Session, _ map[string]any) (any, error) {
				_, reason := ops.SessionStatus(ctx, s)
				return optString(reason), nil
			}),
			"createdAt": plain(nn(b.timeT), "", func(s model.Session) any { return s.CreatedAt }),
			"snapLength": plain(integer, "copies are cut to this many bytes; null: whole frames", func(s model.Session) any {
				if s.SnapLength == 0 {
					return nil
				}
				return int64(s.SnapLength)
			}),
			"bandwidthLimitKbps": plain(integer, "copies beyond this rate are dropped; null: unlimited", func(s model.Session) any {
				if s.BandwidthLimitKbps == 0 {
					return nil
				}
				return int64(s.BandwidthLimitKbps)
			}),
			"expiresAt": plain(b.timeT, "when the controller deletes the session; null: never", func(s model.Session) any {
				if s.ExpiresAt == nil {
					return nil
				}
				return *s.ExpiresAt
			}),
			"filters": plain(nn(gql.NewList(nn(b.filterRule))), "ordered; the first rule that matches a frame decides; empty: every frame",
				func(s model.Session) any {
					if s.Filters == nil {
						return []model.FilterRule{}
					}
					return s.Filters
				}),
		}
	})})

	b.swtch = gql.NewObject(gql.ObjectConfig{Name: "Switch", Fields: gql.Fields{
		"datapathId": plain(nn(str), "", func(s model.Switch) any { return s.DatapathID }),
		"host": linked(b.host, "", func(ctx context.Context, s model.Switch, _ map[string]any) (any, error) {
			if s.HostUUID == "" {
				return nil, nil
			}
			return orNull(ops.Host(ctx, s.HostUUID))
		}),
		"connected":     plain(nn(boolean), "", func(s model.Switch) any { return s.Connected }),
		"remoteAddress": plain(str, "", func(s model.Switch) any { return optString(s.RemoteAddress) }),
		"connectedAt":   plain(b.timeT, "", func(s model.Switch) any { return optTime(s.ConnectedAt) }),
		"ports":         plain(listOf(b.port), "", func(s model.Switch) any { return s.Ports }),
		"flowCount":     plain(nn(integer), "flows the controller has installed on it", func(s model.Switch) any { return s.FlowCount }),
		"role": plain(gql.String, "the answering controller's OpenFlow role on the switch: MASTER (it programs the switch), SLAVE or EQUAL",
			func(s model.Switch) any { return optString(s.Role) }),
	}})
}

// sessionStatusCounts is PortMirror.sessionStatusCounts.
type sessionStatusCounts struct{ active, inactive, pending, error int }

func (c *sessionStatusCounts) add(st model.SessionStatus) {
	switch st {
	case model.StatusActive:
		c.active++
	case model.StatusInactive:
		c.inactive++
	case model.StatusError:
		c.error++
	default:
		c.pending++
	}
}

// hostDatapathID is the datapath id given at registration, or else the one of the switch the controller
// associates with the host.
func (b *builder) hostDatapathID(ctx context.Context, h model.Host) string {
	if h.DatapathID != "" {
		return h.DatapathID
	}
	for _, s := range b.ops.Switches(ctx) {
		if s.HostUUID == h.UUID {
			return s.DatapathID
		}
	}
	return ""
}

// hostSwitch is the switch the controller associates with the host, or that has its registered datapath id.
func (b *builder) hostSwitch(ctx context.Context, h model.Host) any {
	for _, s := range b.ops.Switches(ctx) {
		if s.HostUUID == h.UUID || h.DatapathID != "" && s.DatapathID == h.DatapathID {
			return s
		}
	}
	return nil
}

func optInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// firstArg reads a page size argument: absent means def; it must be 1..1000.
func firstArg(args map[string]any, def int) (int, error) {
	v, ok := args["first"].(int)
	if !ok {
		return def, nil
	}
	if v < 1 || v > 1000 {
		return 0, invalidArgument(fmt.Sprintf("first is %d: it must be between 1 and 1000", v))
	}
	return v, nil
}
