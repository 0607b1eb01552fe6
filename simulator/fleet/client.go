package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"portmirror/model"
	"portmirror/service"
)

// Client is the API over GraphQL (POST /graphql): it implements API for a fleet registering with a running
// portmirrord.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8080/graphql
	Token string // bearer token; "" for none (the daemon then serves loopback clients only)
	HTTP  *http.Client
}

// NewClient returns a client of the GraphQL endpoint at url.
func NewClient(url, token string) *Client {
	return &Client{URL: url, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

var _ API = (*Client)(nil)

// GraphQLError is an error the API answered, with its extensions.
type GraphQLError struct {
	Message string
	Code    string
	Rule    string
}

func (e *GraphQLError) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("%s (%s %s)", e.Message, e.Code, e.Rule)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	return e.Message
}

// Do runs one GraphQL document and decodes its data into out (may be nil).
func (c *Client) Do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": dropNils(vars)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("POST %s: reading the answer: %w", c.URL, err)
	}
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
				Rule string `json:"rule"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("POST %s: HTTP %d, not a GraphQL answer: %.200s", c.URL, resp.StatusCode, raw)
	}
	if len(res.Errors) > 0 {
		e := res.Errors[0]
		return &GraphQLError{Message: e.Message, Code: e.Extensions.Code, Rule: e.Extensions.Rule}
	}
	if out != nil {
		if err := json.Unmarshal(res.Data, out); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return nil
}

// mutate runs a mutation whose one field returns an object with a uuid (or an ID), and returns that uuid.
func (c *Client) mutate(ctx context.Context, doc string, vars map[string]any) (string, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, doc, vars, &out); err != nil {
		return "", err
	}
	for _, v := range out {
		var obj struct {
			UUID string `json:"uuid"`
		}
		if json.Unmarshal(v, &obj) == nil && obj.UUID != "" {
			return obj.UUID, nil
		}
		var id string
		if json.Unmarshal(v, &id) == nil {
			return id, nil
		}
	}
	return "", nil
}

// dropNils removes absent optional values (nil) from variables: the API reads an absent field as its default.
func dropNils(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		switch y := x.(type) {
		case nil:
			continue
		case map[string]any:
			out[k] = dropNils(y)
		case []any:
			l := make([]any, len(y))
			for i, e := range y {
				if m, ok := e.(map[string]any); ok {
					l[i] = dropNils(m)
				} else {
					l[i] = e
				}
			}
			out[k] = l
		default:
			out[k] = x
		}
	}
	return out
}

func opt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *Client) CreateCluster(ctx context.Context, in service.ClusterInput) (model.Cluster, error) {
	id, err := c.mutate(ctx, `mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": opt(in.UUID), "name": in.Name}})
	return model.Cluster{UUID: id, Name: in.Name}, err
}

func (c *Client) RegisterHost(ctx context.Context, in service.HostInput) (model.Host, error) {
	bridge := in.Bridge
	if bridge == "" {
		bridge = model.DefaultBridge
	}
	id, err := c.mutate(ctx, `mutation($in: HostInput!) { registerHost(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": opt(in.UUID), "name": in.Name, "clusterUuid": in.ClusterUUID,
			"managementIp": opt(in.ManagementIP), "ovsdbAddress": opt(in.OVSDBAddress), "bridge": bridge, "datapathId": opt(in.DatapathID)}})
	return model.Host{UUID: id, Name: in.Name, ClusterUUID: in.ClusterUUID, Bridge: bridge, DatapathID: in.DatapathID}, err
}

func (c *Client) CreateVmInstance(ctx context.Context, in service.VmInstanceInput) (model.VmInstance, error) {
	nics := make([]any, 0, len(in.Nics))
	for _, n := range in.Nics {
		nics = append(nics, map[string]any{"uuid": opt(n.UUID), "mac": n.MAC, "ip": opt(n.IP), "l3NetworkUuid": opt(n.L3NetworkUUID),
			"isDefault": n.IsDefault, "portName": opt(n.PortName)})
	}
	id, err := c.mutate(ctx, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": opt(in.UUID), "name": in.Name, "hostUuid": in.HostUUID, "nics": nics}})
	return model.VmInstance{UUID: id, Name: in.Name, HostUUID: in.HostUUID}, err
}

func (c *Client) MigrateVmInstance(ctx context.Context, uuid, hostUUID string) (model.VmInstance, error) {
	id, err := c.mutate(ctx, `mutation($u: ID!, $h: ID!) { migrateVmInstance(uuid: $u, hostUuid: $h) { uuid } }`,
		map[string]any{"u": uuid, "h": hostUUID})
	return model.VmInstance{UUID: id, HostUUID: hostUUID}, err
}

func (c *Client) CreateFlowNetwork(ctx context.Context, in service.FlowNetworkInput) (model.FlowNetwork, error) {
	enc := in.Encapsulation
	if enc == "" {
		enc = model.GRE
	}
	id, err := c.mutate(ctx, `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": opt(in.UUID), "name": in.Name, "description": opt(in.Description),
			"cidr": in.CIDR, "encapsulation": string(enc), "clusterUuids": in.ClusterUUIDs}})
	return model.FlowNetwork{UUID: id, Name: in.Name, CIDR: in.CIDR, Encapsulation: enc, ClusterUUIDs: in.ClusterUUIDs}, err
}

func (c *Client) SetFlowEndpoint(ctx context.Context, flowNetworkUUID, hostUUID, ip string) (model.FlowEndpoint, error) {
	err := c.Do(ctx, `mutation($f: ID!, $h: ID!, $ip: String!) { setFlowEndpoint(flowNetworkUuid: $f, hostUuid: $h, ip: $ip) { ip } }`,
		map[string]any{"f": flowNetworkUUID, "h": hostUUID, "ip": ip}, nil)
	return model.FlowEndpoint{FlowNetworkUUID: flowNetworkUUID, HostUUID: hostUUID, IP: ip, Manual: true}, err
}

func (c *Client) CreatePortMirror(ctx context.Context, in service.PortMirrorInput) (model.PortMirror, error) {
	sessions := make([]any, 0, len(in.Sessions))
	for _, s := range in.Sessions {
		sessions = append(sessions, map[string]any{"name": s.Name, "type": string(s.Type), "sourceNicUuid": s.SourceNicUUID,
			"destinationNicUuid": s.DestinationNicUUID})
	}
	id, err := c.mutate(ctx, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": in.Name, "description": opt(in.Description), "flowNetworkUuid": in.FlowNetworkUUID,
			"enable": in.Enable, "sessions": sessions}})
	state := model.Disabled
	if in.Enable {
		state = model.Enabled
	}
	return model.PortMirror{UUID: id, Name: in.Name, FlowNetworkUUID: in.FlowNetworkUUID, State: state}, err
}

func (c *Client) EnablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	id, err := c.mutate(ctx, `mutation($u: ID!) { enablePortMirror(uuid: $u) { uuid } }`, map[string]any{"u": uuid})
	return model.PortMirror{UUID: id, State: model.Enabled}, err
}

func (c *Client) DisablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	id, err := c.mutate(ctx, `mutation($u: ID!) { disablePortMirror(uuid: $u) { uuid } }`, map[string]any{"u": uuid})
	return model.PortMirror{UUID: id, State: model.Disabled}, err
}

func (c *Client) DeletePortMirror(ctx context.Context, uuid string) error {
	return c.Do(ctx, `mutation($u: ID!) { deletePortMirror(uuid: $u) }`, map[string]any{"u": uuid}, nil)
}

func (c *Client) AddPortMirrorSession(ctx context.Context, portMirrorUUID string, in service.SessionInput) (model.Session, error) {
	var out struct {
		S struct {
			UUID      string `json:"uuid"`
			TunnelKey uint32 `json:"tunnelKey"`
		} `json:"addPortMirrorSession"`
	}
	err := c.Do(ctx, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid tunnelKey } }`,
		map[string]any{"pm": portMirrorUUID, "in": map[string]any{"name": in.Name, "type": string(in.Type),
			"sourceNicUuid": in.SourceNicUUID, "destinationNicUuid": in.DestinationNicUUID}}, &out)
	return model.Session{UUID: out.S.UUID, Name: in.Name, Type: in.Type, PortMirrorUUID: portMirrorUUID,
		SourceNicUUID: in.SourceNicUUID, DestinationNicUUID: in.DestinationNicUUID, TunnelKey: out.S.TunnelKey}, err
}

func (c *Client) DeletePortMirrorSession(ctx context.Context, uuid string) error {
	return c.Do(ctx, `mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, map[string]any{"u": uuid}, nil)
}

// SessionStatus is one session's status as the API reports it.
type SessionStatus struct {
	UUID      string              `json:"uuid"`
	Name      string              `json:"name"`
	Status    model.SessionStatus `json:"status"`
	Reason    string              `json:"statusReason"`
	TunnelKey uint32              `json:"tunnelKey"`
}

// SessionStatuses lists every session of every port mirror with its status.
func (c *Client) SessionStatuses(ctx context.Context) ([]SessionStatus, error) {
	var out struct {
		PMs []struct {
			Sessions []SessionStatus `json:"sessions"`
		} `json:"portMirrors"`
	}
	if err := c.Do(ctx, `{ portMirrors { sessions { uuid name status statusReason tunnelKey } } }`, nil, &out); err != nil {
		return nil, err
	}
	var all []SessionStatus
	for _, pm := range out.PMs {
		all = append(all, pm.Sessions...)
	}
	return all, nil
}
