package service

import (
	"fmt"
	"strings"
	"testing"

	"portmirror/model"
	"portmirror/store"
)

// TestEncapsulationConflict: a cluster never carries a GRE and an ERSPAN flow network at once, whichever comes
// first and whether the second is attached at creation or later; VXLAN coexists with either; a refusal changes
// nothing and is audited.
func TestEncapsulationConflict(t *testing.T) {
	f := newFixtureIn(t, "")
	svc, ctx := f.svc, f.ctx
	// alpha (c1) carries the GRE flow networks mirror-net and spare; beta (c2) carries nothing yet.
	create := func(name string, enc model.Encapsulation, cidr string, clusters ...string) (model.FlowNetwork, error) {
		return svc.CreateFlowNetwork(ctx, FlowNetworkInput{Name: name, CIDR: cidr, Encapsulation: enc, ClusterUUIDs: clusters})
	}
	refused := func(t *testing.T, err error, names ...string) {
		t.Helper()
		e := AsError(err)
		if e == nil || e.Code != CodeConflict || e.Rule != RuleEncapsulationConflict {
			t.Fatalf("want CONFLICT/ENCAPSULATION_CONFLICT, got %v", err)
		}
		for _, n := range names {
			if !strings.Contains(e.Message, n) {
				t.Errorf("message %q does not name %q", e.Message, n)
			}
		}
	}

	for _, enc := range []model.Encapsulation{model.ERSPANv1, model.ERSPANv2} {
		t.Run(string(enc), func(t *testing.T) {
			before := dump(t, f.st)
			// Created attached to alpha, which holds GRE: refused, nothing stored.
			_, err := create("span-"+string(enc), enc, "198.18.20.0/24", f.c1)
			refused(t, err, "alpha", "mirror-net", string(enc), "GRE")
			if after := dump(t, f.st); after != before {
				t.Fatalf("a refused create changed the store")
			}
			// Created free, then attached to alpha: refused; attached to beta: fine.
			fn, err := create("span2-"+string(enc), enc, "198.18.21.0/24")
			if err != nil {
				t.Fatal(err)
			}
			before = dump(t, f.st)
			_, err = svc.AttachFlowNetworkToCluster(ctx, fn.UUID, f.c1)
			refused(t, err, "alpha", "span2-"+string(enc))
			if after := dump(t, f.st); after != before {
				t.Fatalf("a refused attach changed the store")
			}
			if _, err := svc.AttachFlowNetworkToCluster(ctx, fn.UUID, f.c2); err != nil {
				t.Fatalf("attach to beta: %v", err)
			}
			// Now GRE toward beta is refused, the reverse of the rule.
			gre, err := create("gre-"+string(enc), model.GRE, "198.18.22.0/24")
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.AttachFlowNetworkToCluster(ctx, gre.UUID, f.c2)
			refused(t, err, "beta", "span2-"+string(enc))
			// VXLAN coexists with both.
			vx, err := create("vx-"+string(enc), model.VXLAN, "198.18.23.0/24", f.c1, f.c2)
			if err != nil {
				t.Fatalf("VXLAN beside GRE and ERSPAN: %v", err)
			}
			// Another ERSPAN flow network of either version beside this one is fine.
			other := model.ERSPANv1
			if enc == model.ERSPANv1 {
				other = model.ERSPANv2
			}
			o, err := create("other-"+string(enc), other, "198.18.24.0/24", f.c2)
			if err != nil {
				t.Fatalf("ERSPAN beside ERSPAN: %v", err)
			}
			// Once the ERSPAN flow networks leave beta, GRE may come.
			for _, id := range []string{fn.UUID, o.UUID} {
				if _, err := svc.DetachFlowNetworkFromCluster(ctx, id, f.c2); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := svc.AttachFlowNetworkToCluster(ctx, gre.UUID, f.c2); err != nil {
				t.Fatalf("GRE after the ERSPAN networks left: %v", err)
			}
			for _, id := range []string{fn.UUID, o.UUID, gre.UUID, vx.UUID} {
				if _, err := svc.DetachFlowNetworkFromCluster(ctx, id, f.c2); err != nil {
					t.Fatal(err)
				}
				if err := svc.DeleteFlowNetwork(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	evs := audits(t, svc, AuditQuery{Operation: "attachFlowNetworkToCluster"})
	n := 0
	for _, e := range evs {
		if !e.Success && strings.Contains(e.Error, "ENCAPSULATION_CONFLICT") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d refused attaches audited with the rule, want 4", n)
	}
}

// TestERSPANTunnelKeys: an ERSPAN flow network hands out session ids 1..1023, one per destination NIC, and
// refuses the 1024th destination with TUNNEL_KEYS_EXHAUSTED (CONFLICT), changing nothing; a freed id is reused.
func TestERSPANTunnelKeys(t *testing.T) {
	f := newFixtureIn(t, "")
	svc, ctx := f.svc, f.ctx
	h4 := f.must1(svc.RegisterHost(ctx, HostInput{Name: "hv4", ClusterUUID: f.c2})).(model.Host).UUID
	in := VmInstanceInput{Name: "capture", HostUUID: h4}
	for i := range 1024 {
		in.Nics = append(in.Nics, VmNicInput{MAC: fmt.Sprintf("02:77:00:00:%02x:%02x", i/256, i%256)})
	}
	vm := f.must1(svc.CreateVmInstance(ctx, in)).(model.VmInstance)
	var dsts []string
	for _, n := range store.Lookup[model.VmNic](f.st, store.IdxVm, vm.UUID) {
		if !n.IsDefault {
			dsts = append(dsts, n.UUID)
		}
	}
	if len(dsts) < 1024 {
		t.Fatalf("%d capture NICs", len(dsts))
	}
	fn := f.must1(svc.CreateFlowNetwork(ctx, FlowNetworkInput{Name: "span", CIDR: "198.18.30.0/24",
		Encapsulation: model.ERSPANv2, ClusterUUIDs: []string{f.c2}})).(model.FlowNetwork)
	// 1023 destinations at once (one transaction), then the ids they got.
	in2 := PortMirrorInput{Name: "span-pm", FlowNetworkUUID: fn.UUID}
	for i := range 1023 {
		in2.Sessions = append(in2.Sessions, SessionInput{Name: fmt.Sprint("s", i), Type: model.Egress,
			SourceNicUUID: f.n3b, DestinationNicUUID: dsts[i]})
	}
	pm := f.must1(svc.CreatePortMirror(ctx, in2)).(model.PortMirror)
	seen := map[uint32]bool{}
	var first model.Session
	ss, err := svc.Sessions(ctx, pm.UUID)
	if err != nil || len(ss) != 1023 {
		t.Fatalf("%d sessions, %v", len(ss), err)
	}
	for _, s := range ss {
		if s.TunnelKey < 1 || s.TunnelKey > 1023 || seen[s.TunnelKey] {
			t.Fatalf("session %s: key %d (outside 1..1023 or reused)", s.Name, s.TunnelKey)
		}
		seen[s.TunnelKey] = true
		if s.DestinationNicUUID == dsts[0] {
			first = s
		}
	}
	// A second session to an existing destination shares its id.
	s, err := svc.AddPortMirrorSession(ctx, pm.UUID, SessionInput{Name: "again", Type: model.Ingress,
		SourceNicUUID: f.n3b, DestinationNicUUID: dsts[5]})
	if want := keyOf(ss, dsts[5]); err != nil || s.TunnelKey != want {
		t.Fatalf("second session to a destination: key %d, %v; want its %d", s.TunnelKey, err, want)
	}
	before := dump(t, f.st)
	_, err = svc.AddPortMirrorSession(ctx, pm.UUID, SessionInput{Name: "one-too-many", Type: model.Egress,
		SourceNicUUID: f.n3b, DestinationNicUUID: dsts[1023]})
	e := AsError(err)
	if e == nil || e.Code != CodeConflict || e.Rule != RuleTunnelKeysExhausted || !strings.Contains(e.Message, "span") ||
		!strings.Contains(e.Message, "1023") {
		t.Fatalf("1024th destination: want CONFLICT/TUNNEL_KEYS_EXHAUSTED naming the flow network and 1..1023, got %v", err)
	}
	if dump(t, f.st) != before {
		t.Fatal("the refused session changed the store")
	}
	// Free one id; the next new destination takes it.
	if err := svc.DeletePortMirrorSession(ctx, first.UUID); err != nil {
		t.Fatal(err)
	}
	s, err = svc.AddPortMirrorSession(ctx, pm.UUID, SessionInput{Name: "reuse", Type: model.Egress,
		SourceNicUUID: f.n3b, DestinationNicUUID: dsts[1023]})
	if err != nil || s.TunnelKey != first.TunnelKey {
		t.Fatalf("after freeing %d: key %d, %v", first.TunnelKey, s.TunnelKey, err)
	}
}

func keyOf(ss []model.Session, dst string) uint32 {
	for _, s := range ss {
		if s.DestinationNicUUID == dst {
			return s.TunnelKey
		}
	}
	return 0
}
