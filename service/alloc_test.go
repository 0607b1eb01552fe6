package service

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"portmirror/model"
	"portmirror/store"
)

func TestTunnelKeys(t *testing.T) {
	f := newFixture(t)
	svc, ctx := f.svc, f.ctx
	add := func(name, src, dst string) model.Session {
		t.Helper()
		s, err := svc.AddPortMirrorSession(ctx, f.pm1, SessionInput{Name: name, Type: model.Egress, SourceNicUUID: src, DestinationNicUUID: dst})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := add("a", f.n1b, f.n2c) // new destination: 2 (s1 holds 1 for n2b)
	b := add("b", f.n4a, f.n2b) // same destination as s1: 1
	if a.TunnelKey != 2 || b.TunnelKey != 1 {
		t.Fatalf("keys a=%d b=%d", a.TunnelKey, b.TunnelKey)
	}
	// Key 1 stays while b still sends to n2b after s1 goes.
	if err := svc.DeletePortMirrorSession(ctx, f.s1); err != nil {
		t.Fatal(err)
	}
	c := add("c", f.n1a, f.n2b)
	if c.TunnelKey != 1 {
		t.Fatalf("key of c = %d, want 1 (n2b's key while b uses it)", c.TunnelKey)
	}
	// Free key 2 (a was n2c's only session) and reuse it for a new destination.
	if err := svc.DeletePortMirrorSession(ctx, a.UUID); err != nil {
		t.Fatal(err)
	}
	d := add("d", f.n1b, f.n2c)
	if d.TunnelKey != 2 {
		t.Fatalf("key of d = %d, want the freed 2", d.TunnelKey)
	}
}

// mirrorLab is a cluster with two hosts, a VM with many source NICs and a VM with many capture NICs, a flow
// network and an enabled port mirror on it.
type mirrorLab struct {
	*fx
	srcs, dsts []string
	fn, pm     string
}

func newMirrorLab(t testing.TB, nSrc, nDst int, cidr string) *mirrorLab {
	return newMirrorLabIn(t, t.TempDir(), nSrc, nDst, cidr)
}

// newMirrorLabIn is newMirrorLab on a store in dir, or in memory when dir is "".
func newMirrorLabIn(t testing.TB, dir string, nSrc, nDst int, cidr string) *mirrorLab {
	f := newFixtureIn(t, dir)
	l := &mirrorLab{fx: f}
	mk := func(name, host string, n int) []string {
		in := VmInstanceInput{Name: name, HostUUID: host}
		for i := range n {
			in.Nics = append(in.Nics, VmNicInput{MAC: fmt.Sprintf("02:%02x:00:00:%02x:%02x", len(name), i/256, i%256)})
		}
		vm := f.must1(f.svc.CreateVmInstance(f.ctx, in)).(model.VmInstance)
		var out []string
		for _, n := range store.Lookup[model.VmNic](f.st, store.IdxVm, vm.UUID) {
			out = append(out, n.UUID)
		}
		return out
	}
	l.srcs = mk("sources", f.h1, nSrc)
	l.dsts = mk("capture", f.h2, nDst)
	l.fn = f.must1(f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "lab", CIDR: cidr, ClusterUUIDs: []string{f.c1}})).(model.FlowNetwork).UUID
	l.pm = f.must1(f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "lab-pm", FlowNetworkUUID: l.fn, Enable: true})).(model.PortMirror).UUID
	return l
}

// TestTunnelKeysRandom adds and deletes sessions at random and holds the keys against an oracle: one key per
// destination, shared by its sessions, a new destination gets the smallest key not in use.
func TestTunnelKeysRandom(t *testing.T) {
	l := newMirrorLab(t, 6, 8, "198.18.4.0/24")
	svc, ctx := l.svc, l.ctx
	rng := rand.New(rand.NewPCG(1, 2))
	type sess struct {
		src, dst string
		typ      model.Direction
		key      uint32
	}
	live := map[string]sess{} // session uuid → what the oracle expects
	keyOf := func(dst string) (uint32, bool) {
		for _, s := range live {
			if s.dst == dst {
				return s.key, true
			}
		}
		return 0, false
	}
	smallestFree := func() uint32 {
		used := map[uint32]bool{}
		for _, s := range live {
			used[s.key] = true
		}
		for k := uint32(1); ; k++ {
			if !used[k] {
				return k
			}
		}
	}
	dirs := []model.Direction{model.Ingress, model.Egress, model.Bidirection}
	for step := range 300 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			ids := make([]string, 0, len(live))
			for id := range live {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			id := ids[rng.IntN(len(ids))]
			if err := svc.DeletePortMirrorSession(ctx, id); err != nil {
				t.Fatalf("step %d: delete: %v", step, err)
			}
			delete(live, id)
			continue
		}
		in := sess{src: l.srcs[rng.IntN(len(l.srcs))], dst: l.dsts[rng.IntN(len(l.dsts))], typ: dirs[rng.IntN(3)]}
		dup := false
		for _, s := range live {
			dup = dup || s.src == in.src && s.dst == in.dst && s.typ == in.typ
		}
		want, ok := keyOf(in.dst)
		if !ok {
			want = smallestFree()
		}
		got, err := svc.AddPortMirrorSession(ctx, l.pm, SessionInput{Name: fmt.Sprint("s", step), Type: in.typ, SourceNicUUID: in.src, DestinationNicUUID: in.dst})
		if dup {
			if AsError(err).Rule != RuleDuplicateSession {
				t.Fatalf("step %d: duplicate accepted or wrong refusal: %v", step, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: add: %v", step, err)
		}
		if got.TunnelKey != want {
			t.Fatalf("step %d: key %d, oracle %d", step, got.TunnelKey, want)
		}
		in.key = got.TunnelKey
		live[got.UUID] = in
	}
	// The stored keys agree with the oracle after all of it, and after a reopen.
	ss, _ := svc.Sessions(ctx, l.pm)
	if len(ss) != len(live) {
		t.Fatalf("%d sessions stored, oracle has %d", len(ss), len(live))
	}
	for _, s := range ss {
		if live[s.UUID].key != s.TunnelKey {
			t.Fatalf("session %s key %d, oracle %d", s.UUID, s.TunnelKey, live[s.UUID].key)
		}
	}
}

// TestEndpointsRandom registers and deletes hosts, sets endpoints by hand and detaches/attaches the cluster at
// random, holding the endpoint IPs against an oracle: every host of the attached cluster has exactly one IP, all
// distinct, inside the CIDR, never network or broadcast; an allocation takes the smallest free address, and an
// exhausted CIDR refuses.
func TestEndpointsRandom(t *testing.T) {
	f := newFixture(t)
	svc, ctx := f.svc, f.ctx
	c, _ := svc.CreateCluster(ctx, ClusterInput{Name: "gamma"})
	fn, err := svc.CreateFlowNetwork(ctx, FlowNetworkInput{Name: "small", CIDR: "198.18.7.16/28", ClusterUUIDs: []string{c.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.18.7.16/28")
	first, last := netip.MustParseAddr("198.18.7.17"), netip.MustParseAddr("198.18.7.30")
	oracle := map[string]netip.Addr{} // host → ip
	var hosts []string                // in creation order
	attached := true
	smallestFree := func() (netip.Addr, bool) {
		used := map[netip.Addr]bool{}
		for _, ip := range oracle {
			used[ip] = true
		}
		for a := first; a.Compare(last) <= 0; a = a.Next() {
			if !used[a] {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 400 {
		switch r := rng.IntN(10); {
		case r < 4: // register
			want, free := smallestFree()
			h, err := svc.RegisterHost(ctx, HostInput{Name: fmt.Sprint("h", step), ClusterUUID: c.UUID})
			if attached && !free {
				if AsError(err).Rule != RuleInvalidArgument {
					t.Fatalf("step %d: exhausted cidr accepted a host: %v", step, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: register: %v", step, err)
			}
			hosts = append(hosts, h.UUID)
			if attached {
				oracle[h.UUID] = want
			}
		case r < 7 && len(hosts) > 0: // delete
			i := rng.IntN(len(hosts))
			if err := svc.DeleteHost(ctx, hosts[i]); err != nil {
				t.Fatalf("step %d: delete host: %v", step, err)
			}
			delete(oracle, hosts[i])
			hosts = slices.Delete(hosts, i, i+1)
		case r < 9 && len(hosts) > 0 && attached: // set by hand
			h := hosts[rng.IntN(len(hosts))]
			ip := netip.AddrFrom4([4]byte{198, 18, 7, byte(16 + rng.IntN(16))})
			_, err := svc.SetFlowEndpoint(ctx, fn.UUID, h, ip.String())
			taken := false
			for o, oip := range oracle {
				taken = taken || o != h && oip == ip
			}
			switch {
			case ip.Compare(first) < 0 || ip.Compare(last) > 0:
				if AsError(err).Rule != RuleInvalidArgument {
					t.Fatalf("step %d: set %s: %v", step, ip, err)
				}
			case taken:
				if AsError(err).Rule != RuleAlreadyExists {
					t.Fatalf("step %d: set taken %s: %v", step, ip, err)
				}
			case err != nil:
				t.Fatalf("step %d: set %s: %v", step, ip, err)
			default:
				oracle[h] = ip
			}
		default: // detach or attach
			if attached {
				if _, err := svc.DetachFlowNetworkFromCluster(ctx, fn.UUID, c.UUID); err != nil {
					t.Fatalf("step %d: detach: %v", step, err)
				}
				clear(oracle)
				attached = false
				break
			}
			_, err := svc.AttachFlowNetworkToCluster(ctx, fn.UUID, c.UUID)
			if len(hosts) > 14 {
				if AsError(err).Rule != RuleInvalidArgument {
					t.Fatalf("step %d: attach of %d hosts to a /28: %v", step, len(hosts), err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: attach: %v", step, err)
			}
			attached = true
			for _, h := range hosts {
				ip, _ := smallestFree()
				oracle[h] = ip
			}
		}
		eps, _ := svc.FlowEndpoints(ctx, fn.UUID)
		got := map[string]netip.Addr{}
		for _, ep := range eps {
			ip := netip.MustParseAddr(ep.IP)
			if !p.Contains(ip) || ip == first.Prev() || ip == last.Next() {
				t.Fatalf("step %d: endpoint %s outside the usable range", step, ip)
			}
			got[ep.HostUUID] = ip
		}
		if len(got) != len(oracle) {
			t.Fatalf("step %d: %d endpoints, oracle %d", step, len(got), len(oracle))
		}
		for h, ip := range oracle {
			if got[h] != ip {
				t.Fatalf("step %d: host %s has %s, oracle %s", step, h, got[h], ip)
			}
		}
	}
}
