package bench

import (
	"context"
	"fmt"
	"net/netip"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/service"
)

// captures is how many capture NICs the one-bridge state mirrors to.
const captures = 8

// oneBridge is the state of part 1: sources BIDIRECTION sessions on one bridge, each copying one source NIC to one
// of eight capture NICs of a monitoring VM on the same bridge. Every source's frames to every other source need a
// combined flow, so the bridge's table grows with the square of the sources.
type oneBridge struct {
	dpid     string
	sources  int
	pm       string // the port mirror, created disabled
	sessions []model.Session
	ports    map[string]uint32 // OpenFlow port name -> number, as the bridge must have them
	input    *flows.Input      // the compiler's input for the same state, to write the same flows for the others
}

func sourcePort(i int) uint32  { return uint32(i + 1) }
func capturePort(d int) uint32 { return uint32(5001 + d) }

func uuidN(kind, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, i) }

// buildOneBridge stores the state through the service: one cluster, one host whose bridge has datapath id dpid,
// one flow network, the monitoring VM, one VM per source and one port mirror (disabled) with every session.
func buildOneBridge(ctx context.Context, svc *service.Service, dpid string, sources int) (*oneBridge, error) {
	return buildOneBridgeWith(ctx, svc, dpid, sources, nil)
}

// buildOneBridgeWith is buildOneBridge with every session's input changed by mod (nil: plain sessions). The
// compiler input it keeps (ob.input) does not carry what mod adds.
func buildOneBridgeWith(ctx context.Context, svc *service.Service, dpid string, sources int, mod func(*service.SessionInput)) (*oneBridge, error) {
	ob := &oneBridge{dpid: dpid, sources: sources, ports: map[string]uint32{}}
	c, err := svc.CreateCluster(ctx, service.ClusterInput{UUID: uuidN(1, 1), Name: "bench"})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	h, err := svc.RegisterHost(ctx, service.HostInput{UUID: uuidN(2, 1), Name: "hv1", ClusterUUID: c.UUID, DatapathID: dpid})
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{UUID: uuidN(3, 1), Name: "mirror-net", CIDR: "198.18.0.0/24",
		ClusterUUIDs: []string{c.UUID}})
	if err != nil {
		return nil, fmt.Errorf("flow network: %w", err)
	}
	mon := service.VmInstanceInput{UUID: uuidN(4, 0), Name: "monitor", HostUUID: h.UUID,
		Nics: []service.VmNicInput{{UUID: uuidN(5, 0), MAC: "02:01:00:00:00:ff", IsDefault: true}}}
	for d := range captures {
		name := fmt.Sprintf("cap%d", d)
		mon.Nics = append(mon.Nics, service.VmNicInput{UUID: uuidN(5, d+1), MAC: fmt.Sprintf("02:01:00:00:00:%02x", d), PortName: name})
		ob.ports[name] = capturePort(d)
	}
	if _, err := svc.CreateVmInstance(ctx, mon); err != nil {
		return nil, fmt.Errorf("monitoring VM: %w", err)
	}
	pmIn := service.PortMirrorInput{Name: "bulk", FlowNetworkUUID: fn.UUID}
	for i := range sources {
		name := fmt.Sprintf("src%d", i)
		vm := service.VmInstanceInput{UUID: uuidN(6, i), Name: fmt.Sprintf("vm%d", i), HostUUID: h.UUID,
			Nics: []service.VmNicInput{{UUID: uuidN(7, i), MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), IsDefault: true, PortName: name}}}
		if _, err := svc.CreateVmInstance(ctx, vm); err != nil {
			return nil, fmt.Errorf("source VM %d: %w", i, err)
		}
		ob.ports[name] = sourcePort(i)
		pmIn.Sessions = append(pmIn.Sessions, service.SessionInput{Name: fmt.Sprintf("s%d", i), Type: model.Bidirection,
			SourceNicUUID: uuidN(7, i), DestinationNicUUID: uuidN(5, i%captures+1)})
		if mod != nil {
			mod(&pmIn.Sessions[len(pmIn.Sessions)-1])
		}
	}
	pm, err := svc.CreatePortMirror(ctx, pmIn)
	if err != nil {
		return nil, fmt.Errorf("port mirror: %w", err)
	}
	ob.pm = pm.UUID
	if ob.sessions, err = svc.Sessions(ctx, pm.UUID); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}

	// The same state as the compiler's input, with the bridge connected and every port present.
	in := &flows.Input{NICs: map[string]flows.NIC{}, Endpoints: map[flows.EndpointKey]flows.Endpoint{}, Bridges: map[string]flows.Bridge{}}
	var ports []uint32
	for _, p := range ob.ports {
		ports = append(ports, p)
	}
	in.Bridges[dpid] = flows.Bridge{Ports: append(ports, 0xfffffffe)}
	in.Endpoints[flows.EndpointKey{FlowNetwork: fn.UUID, DatapathID: dpid}] = flows.Endpoint{IP: netip.MustParseAddr("198.18.0.1")}
	for d := range captures {
		in.NICs[uuidN(5, d+1)] = flows.NIC{MAC: fmt.Sprintf("02:01:00:00:00:%02x", d), DatapathID: dpid, Port: capturePort(d)}
	}
	for i := range sources {
		in.NICs[uuidN(7, i)] = flows.NIC{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), DatapathID: dpid, Port: sourcePort(i)}
	}
	for _, s := range ob.sessions {
		in.Sessions = append(in.Sessions, flows.Session{UUID: s.UUID, Type: s.Type, SourceNIC: s.SourceNicUUID,
			DestinationNIC: s.DestinationNicUUID, TunnelKey: s.TunnelKey, FlowNetwork: fn.UUID, Encapsulation: fn.Encapsulation})
	}
	ob.input = in
	return ob, nil
}

// flows is what the bridge should hold: the compiler's output for the state.
func (ob *oneBridge) flows() []flows.Flow { return flows.CompileBridge(ob.input, ob.dpid) }
