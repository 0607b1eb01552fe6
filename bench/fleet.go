package bench

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// fleet is the large stored state of parts 5 and 6: hosts hosts in ten clusters, one VM per host with ten NICs
// (port names nic0..nic9 on the host's bridge), one flow network per cluster, and one port mirror per cluster whose
// sessions copy NIC 0 of every host to NIC 1 of the next host of the cluster: as many sessions as hosts, each
// spanning two hosts. A small cluster "api" (two hosts) serves the createPortMirror measurement.
type fleet struct {
	hosts    int
	clusters int
	fns      []string // flow network uuids, one per cluster
	apiFN    []string // flow networks for the createPortMirror calls, attached to the api cluster only
	apiSrc   []string // ten source NICs on api host 1
	apiDst   string   // the capture NIC on api host 2
}

const nicsPerHost = 10

func fleetHostUUID(h int) string   { return uuidN(0x20, h) }
func fleetNICUUID(h, j int) string { return uuidN(0x50, h*nicsPerHost+j) }
func fleetDPID(h int) uint64       { return 0x10_0000 + uint64(h) }
func fleetNICMAC(h, j int) string {
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", 0x10|j>>8, h>>16&0xff, h>>8&0xff, h&0xff, j&0xff)
}

// populateFleet writes the fleet into an on-disk store at dir (as the daemon will open it): the inventory in bulk,
// flow networks and port mirrors through the service (rules, endpoints, tunnel keys). apiCalls flow networks are
// made ready for the createPortMirror measurement.
func populateFleet(ctx context.Context, dir string, hosts, apiCalls int, quiet *slog.Logger) (*fleet, error) {
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	defer st.Close()
	svc := service.New(st, service.Options{Logger: quiet})
	ctx = service.WithActor(ctx, "bench")
	f := &fleet{hosts: hosts, clusters: 10}
	per := hosts / f.clusters
	if err := putInventory(ctx, st, hosts, f.clusters); err != nil {
		return nil, err
	}
	for c := range f.clusters {
		fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{UUID: uuidN(0x30, c), Name: fmt.Sprintf("mirror-net%d", c),
			CIDR: fmt.Sprintf("198.18.%d.0/22", 4*c), ClusterUUIDs: []string{uuidN(0x10, c)}})
		if err != nil {
			return nil, fmt.Errorf("flow network of cluster %d: %w", c, err)
		}
		f.fns = append(f.fns, fn.UUID)
		in := service.PortMirrorInput{Name: fmt.Sprintf("fleet%d", c), FlowNetworkUUID: fn.UUID, Enable: true}
		for i := range per {
			h := c*per + i
			next := c*per + (i+1)%per
			in.Sessions = append(in.Sessions, service.SessionInput{Name: fmt.Sprintf("hv%d", h), Type: model.Bidirection,
				SourceNicUUID: fleetNICUUID(h, 0), DestinationNicUUID: fleetNICUUID(next, 1)})
		}
		if _, err := svc.CreatePortMirror(ctx, in); err != nil {
			return nil, fmt.Errorf("port mirror of cluster %d: %w", c, err)
		}
	}

	api, err := buildAPICluster(ctx, svc, apiCalls, func(i int) string { return fmt.Sprintf("198.19.%d.0/24", i%256) })
	if err != nil {
		return nil, err
	}
	f.apiSrc, f.apiDst, f.apiFN = api.src, api.dst, api.flowNetworks
	return f, nil
}

// apiCluster is what buildAPICluster made: the source NICs, the capture NIC and the empty flow networks.
type apiCluster struct {
	src          []string
	dst          string
	flowNetworks []string
}

// buildAPICluster makes the cluster the createPortMirror calls use: two hosts without bridges, ten source NICs on
// the first, one capture NIC on the second, and calls flow networks (the i-th on cidr(i)), through the service.
func buildAPICluster(ctx context.Context, svc *service.Service, calls int, cidr func(int) string) (apiCluster, error) {
	var out apiCluster
	apiC, err := svc.CreateCluster(ctx, service.ClusterInput{UUID: uuidN(0x11, 0), Name: "api"})
	if err != nil {
		return out, err
	}
	var hs []model.Host
	for i := range 2 {
		h, err := svc.RegisterHost(ctx, service.HostInput{UUID: uuidN(0x21, i), Name: fmt.Sprintf("api-hv%d", i), ClusterUUID: apiC.UUID})
		if err != nil {
			return out, err
		}
		hs = append(hs, h)
	}
	src := service.VmInstanceInput{UUID: uuidN(0x41, 0), Name: "api-sources", HostUUID: hs[0].UUID}
	for j := range 11 {
		src.Nics = append(src.Nics, service.VmNicInput{UUID: uuidN(0x51, j), MAC: fmt.Sprintf("02:aa:00:00:00:%02x", j), IsDefault: j == 0})
		if j > 0 {
			out.src = append(out.src, uuidN(0x51, j))
		}
	}
	if _, err := svc.CreateVmInstance(ctx, src); err != nil {
		return out, err
	}
	mon := service.VmInstanceInput{UUID: uuidN(0x41, 1), Name: "api-monitor", HostUUID: hs[1].UUID, Nics: []service.VmNicInput{
		{UUID: uuidN(0x52, 0), MAC: "02:ab:00:00:00:00", IsDefault: true}, {UUID: uuidN(0x52, 1), MAC: "02:ab:00:00:00:01"}}}
	if _, err := svc.CreateVmInstance(ctx, mon); err != nil {
		return out, err
	}
	out.dst = uuidN(0x52, 1)
	for i := range calls {
		fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{UUID: uuidN(0x31, i), Name: fmt.Sprintf("api-net%d", i),
			CIDR: cidr(i), ClusterUUIDs: []string{apiC.UUID}})
		if err != nil {
			return out, fmt.Errorf("api flow network %d: %w", i, err)
		}
		out.flowNetworks = append(out.flowNetworks, fn.UUID)
	}
	return out, nil
}

// putInventory writes clusters clusters and hosts hosts (in contiguous blocks per cluster), one VM per host with
// nicsPerHost NICs (NIC 0 the default), in bulk.
func putInventory(ctx context.Context, st *store.Store, hosts, clusters int) error {
	per := hosts / clusters
	now := time.Now().UTC()
	var objs []any
	for c := range clusters {
		objs = append(objs, model.Cluster{UUID: uuidN(0x10, c), Name: fmt.Sprintf("cluster%d", c), CreatedAt: now})
	}
	for h := range hosts {
		objs = append(objs, model.Host{UUID: fleetHostUUID(h), Name: fmt.Sprintf("hv%d", h), ClusterUUID: uuidN(0x10, h/per),
			Bridge: model.DefaultBridge, DatapathID: fmt.Sprintf("%016x", fleetDPID(h)), CreatedAt: now})
		objs = append(objs, model.VmInstance{UUID: uuidN(0x40, h), Name: fmt.Sprintf("vm%d", h), HostUUID: fleetHostUUID(h), CreatedAt: now})
		for j := range nicsPerHost {
			objs = append(objs, model.VmNic{UUID: fleetNICUUID(h, j), VmUUID: uuidN(0x40, h), Index: j, MAC: fleetNICMAC(h, j),
				IsDefault: j == 0, PortName: fmt.Sprintf("nic%d", j)})
		}
	}
	if err := st.BulkPut(ctx, objs); err != nil {
		return fmt.Errorf("bulk inventory: %w", err)
	}
	return nil
}
