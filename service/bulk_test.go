package service

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"portmirror/model"
	"portmirror/store"
)

func hostInputs(n int, cluster string) []HostInput {
	out := make([]HostInput, n)
	for i := range out {
		out[i] = HostInput{UUID: fmt.Sprintf("00000000-0000-4000-8000-1%011d", i), Name: fmt.Sprintf("bulk-%d", i),
			ClusterUUID: cluster, DatapathID: fmt.Sprintf("%x", 0x10000+i)}
	}
	return out
}

func TestRegisterHostsBulk(t *testing.T) {
	f := newFixtureIn(t, "")
	if err := f.svc.DeleteFlowNetwork(f.ctx, f.fn2); err != nil { // its /29 has room for 4 more hosts only
		t.Fatal(err)
	}
	hs := hostInputs(240, f.c1)
	res, err := f.svc.RegisterHosts(f.ctx, hs)
	if err != nil {
		t.Fatalf("registerHosts: %v", err)
	}
	if res.Created != 240 || res.Updated != 0 || res.Unchanged != 0 || len(res.UUIDs) != 240 || res.UUIDs[7] != hs[7].UUID {
		t.Fatalf("result = created %d updated %d unchanged %d uuids %d", res.Created, res.Updated, res.Unchanged, len(res.UUIDs))
	}
	// every new host got an endpoint on both flow networks of its cluster, each IP once per flow network
	for _, fn := range []string{f.fn1} {
		eps := store.Lookup[model.FlowEndpoint](f.st, store.IdxFlowNetwork, fn)
		ips := map[string]bool{}
		for _, ep := range eps {
			if ips[ep.IP] {
				t.Fatalf("endpoint IP %s given twice on %s", ep.IP, fn)
			}
			ips[ep.IP] = true
		}
		if len(eps) != 2+240 {
			t.Fatalf("flow network %s has %d endpoints, want %d", fn, len(eps), 242)
		}
	}
	evs := audits(t, f.svc, AuditQuery{Operation: "registerHosts"})
	if len(evs) != 1 || !evs[0].Success || !strings.Contains(evs[0].Detail, `"count":240`) {
		t.Fatalf("audit events of registerHosts = %+v", evs)
	}

	// upsert: the same again is unchanged; a renamed one is updated, a new one created
	hs[3].Name = "renamed"
	hs = append(hs, HostInput{Name: "fresh", ClusterUUID: f.c1})
	res, err = f.svc.RegisterHosts(f.ctx, hs)
	if err != nil {
		t.Fatalf("registerHosts again: %v", err)
	}
	if res.Created != 1 || res.Updated != 1 || res.Unchanged != 239 {
		t.Fatalf("upsert result = created %d updated %d unchanged %d", res.Created, res.Updated, res.Unchanged)
	}
	if h, _ := f.svc.Host(f.ctx, hs[3].UUID); h.Name != "renamed" {
		t.Fatalf("host 3 is %q after the update", h.Name)
	}
}

func TestRegisterHostsAllOrNothing(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(f *fx, hs []HostInput) []HostInput
		code  Code
		names string
	}{
		{"unknown cluster", func(f *fx, hs []HostInput) []HostInput {
			hs[40].ClusterUUID = "00000000-0000-4000-8000-00000000dead"
			return hs
		}, CodeNotFound, "input[40]"},
		{"datapath twice", func(f *fx, hs []HostInput) []HostInput { hs[9].DatapathID = hs[2].DatapathID; return hs }, CodeConflict, "input[9]"},
		{"datapath of a registered host", func(f *fx, hs []HostInput) []HostInput { hs[5].DatapathID = "1"; return hs }, CodeConflict, "hv1"},
		{"uuid twice", func(f *fx, hs []HostInput) []HostInput { hs[11].UUID = hs[10].UUID; return hs }, CodeValidation, "input[10]"},
		{"cluster change", func(f *fx, hs []HostInput) []HostInput {
			return append(hs, HostInput{UUID: f.h1, Name: "hv1", ClusterUUID: f.c2})
		}, CodeValidation, "cannot change"},
		{"too many", func(f *fx, hs []HostInput) []HostInput { return hostInputs(MaxBulk+1, f.c2) }, CodeValidation, "2000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureIn(t, "")
			before := dump(t, f.st)
			_, err := f.svc.RegisterHosts(f.ctx, tc.edit(f, hostInputs(50, f.c2)))
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Message, tc.names) {
				t.Fatalf("err = %v, want %s naming %q", err, tc.code, tc.names)
			}
			if after := dump(t, f.st); after != before {
				t.Fatal("a refused registerHosts changed the store")
			}
			evs := audits(t, f.svc, AuditQuery{Operation: "registerHosts"})
			if len(evs) != 1 || evs[0].Success {
				t.Fatalf("audit events = %+v, want one refused", evs)
			}
		})
	}
}

func TestCreateVmInstancesBulk(t *testing.T) {
	f := newFixtureIn(t, "")
	var vms []VmInstanceInput
	for i := range 200 {
		vms = append(vms, VmInstanceInput{UUID: fmt.Sprintf("00000000-0000-4000-8000-2%011d", i), Name: fmt.Sprintf("vm-%d", i), HostUUID: f.h2,
			Nics: []VmNicInput{
				{UUID: fmt.Sprintf("00000000-0000-4000-8000-3%011d", i), MAC: fmt.Sprintf("02:10:00:00:%02x:%02x", i>>8, i&0xff), IsDefault: true},
				{UUID: fmt.Sprintf("00000000-0000-4000-8000-4%011d", i), MAC: fmt.Sprintf("02:20:00:00:%02x:%02x", i>>8, i&0xff), PortName: fmt.Sprintf("tap%d", i)},
			}})
	}
	res, err := f.svc.CreateVmInstances(f.ctx, vms)
	if err != nil || res.Created != 200 {
		t.Fatalf("createVmInstances: %+v, %v", res, err)
	}
	nics, _ := f.svc.VmNics(f.ctx, vms[17].UUID)
	if len(nics) != 2 || nics[1].PortName != "tap17" || nics[1].Index != 1 {
		t.Fatalf("NICs of VM 17 = %+v", nics)
	}
	// upsert: move VM 1 to hv1, change a port name, add a NIC to VM 2, leave the rest
	vms[1].HostUUID = f.h1
	vms[2].Nics[1].PortName = "tap-new"
	vms[3].Nics = append(vms[3].Nics, VmNicInput{UUID: "00000000-0000-4000-8000-500000000003", MAC: "02:30:00:00:00:03"})
	res, err = f.svc.CreateVmInstances(f.ctx, vms)
	if err != nil || res.Updated != 3 || res.Unchanged != 197 {
		t.Fatalf("upsert: %+v, %v", res, err)
	}
	if vm, _ := f.svc.VmInstance(f.ctx, vms[1].UUID); vm.HostUUID != f.h1 {
		t.Fatalf("VM 1 is on %s", vm.HostUUID)
	}
	if nics, _ := f.svc.VmNics(f.ctx, vms[3].UUID); len(nics) != 3 || nics[2].Index != 2 {
		t.Fatalf("NICs of VM 3 = %+v", nics)
	}

	// a refused entry refuses everything: here a migration of vm1 (source of s1) to a cluster fn1 is not on
	before := dump(t, f.st)
	vms[0].Name = "would-rename"
	moved := VmInstanceInput{UUID: f.vm1, Name: "web", HostUUID: f.h3}
	_, err = f.svc.CreateVmInstances(f.ctx, append(vms, moved))
	var e *Error
	if !errors.As(err, &e) || e.Rule != RuleClusterNotAttached || !strings.Contains(e.Message, "input[200]") {
		t.Fatalf("err = %v, want CLUSTER_NOT_ATTACHED naming input[200]", err)
	}
	// changing an existing NIC's MAC is refused
	vms[0].Nics[0].MAC = "02:99:00:00:00:00"
	if _, err = f.svc.CreateVmInstances(f.ctx, vms); !errors.As(err, &e) || !strings.Contains(e.Message, "cannot change") {
		t.Fatalf("err = %v, want a refusal of the MAC change", err)
	}
	if dump(t, f.st) != before {
		t.Fatal("a refused createVmInstances changed the store")
	}
	if evs := audits(t, f.svc, AuditQuery{Operation: "createVmInstances"}); len(evs) != 4 {
		t.Fatalf("%d audit events, want 4 (one per call)", len(evs))
	}
}
