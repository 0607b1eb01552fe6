package flows

import (
	"math/rand/v2"
	"slices"
	"testing"

	"portmirror/model"
)

// encap sets the encapsulation of every session declared so far on flow network fn.
func (t *topo) encap(fn string, e model.Encapsulation) *topo {
	for i := range t.in.Sessions {
		if t.in.Sessions[i].FlowNetwork == fn {
			t.in.Sessions[i].Encapsulation = e
		}
	}
	return t
}

// erspanGoldenCases are the golden cases of ERSPAN flow networks (part of goldenCases).
func erspanGoldenCases() map[string]*topo {
	const (
		macA = "02:00:00:00:00:0a"
		macB = "02:00:00:00:00:0b"
		macM = "02:00:00:00:00:e1"
		macN = "02:00:00:00:00:e2"
	)
	twoHosts := func() *topo {
		return newTopo().
			bridge(br1, 1, 2, 3, 4, 10).bridge(br2, 1, 2, 5, 6, 10).
			ep(fnA, br1, "198.18.0.1", 10).ep(fnA, br2, "198.18.0.2", 10)
	}
	return map[string]*topo{
		// Type II: A both ways to M, B's ingress to N cut to 96 bytes; every copy says erspan_ver 1 and index 0.
		// A local destination (L on br1) gets plain outputs.
		"erspan_v1": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-l", "02:00:00:00:00:e3", br1, 4).
			nic("nic-m", macM, br2, 5).nic("nic-n", macN, br2, 6).
			session("s1", model.Bidirection, "nic-a", "nic-m", 1, fnA).
			session("s2", model.Ingress, "nic-b", "nic-n", 1023, fnA).snap(96).
			session("s3", model.Egress, "nic-b", "nic-l", 0, "").
			encap(fnA, model.ERSPANv1),
		// Type III: the direction follows the sessions to each destination from the bridge: A's egress to M says
		// 0 (ingress at the switch port), B's ingress to N says 1, and M also gets B's ingress (mixed: 0).
		"erspan_v2": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br2, 5).nic("nic-n", macN, br2, 6).
			session("s1", model.Egress, "nic-a", "nic-m", 5, fnA).
			session("s2", model.Ingress, "nic-b", "nic-n", 6, fnA).
			session("s3", model.Ingress, "nic-b", "nic-m", 5, fnA).
			filter(model.FilterRule{Protocol: "udp", DestinationPorts: "53"}).
			encap(fnA, model.ERSPANv2),
		// A key beyond the 10-bit session id is refused by the compiler, whatever the store holds.
		"erspan_key_too_big": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-m", macM, br2, 5).
			session("s1", model.Egress, "nic-a", "nic-m", 1024, fnA).
			encap(fnA, model.ERSPANv1),
	}
}

// TestErspanCopyActions checks what the goldens show in a form that fails on the field that is wrong: each remote
// copy sets tun_id, tun_dst and the ERSPAN fields of its version, in that order, right before its output.
func TestErspanCopyActions(t *testing.T) {
	cases := erspanGoldenCases()
	wantFields := map[string][]ActionType{
		"erspan_v1": {ActSetTunID, ActSetTunDst, ActSetErspanVer, ActSetErspanIdx},
		"erspan_v2": {ActSetTunID, ActSetTunDst, ActSetErspanVer, ActSetErspanDir, ActSetErspanHwid},
	}
	for name, want := range wantFields {
		remote := 0
		for _, f := range CompileBridge(&cases[name].in, br1) {
			for i, a := range f.Actions {
				if a.Type != ActSetTunID {
					continue
				}
				remote++
				if i+len(want) >= len(f.Actions) {
					t.Fatalf("%s: %s: copy cut short", name, f)
				}
				var got []ActionType
				for _, x := range f.Actions[i : i+len(want)] {
					got = append(got, x.Type)
				}
				out := f.Actions[i+len(want)].Type
				if !slices.Equal(got, want) || out != ActOutput && out != ActOutputTrunc {
					t.Errorf("%s: %s: copy actions %v then %v, want %v then an output", name, f, got, out, want)
				}
				if v := f.Actions[i+2].Value; v != uint64(cases[name].in.Sessions[0].Encapsulation.ERSPANVersion()) {
					t.Errorf("%s: %s: erspan_ver %d", name, f, v)
				}
			}
		}
		if remote == 0 {
			t.Errorf("%s: no remote copy on %s", name, br1)
		}
	}
	// The direction in type III: to N only ingress sessions (1); to M an egress and an ingress one (0).
	dirTo := map[uint64]map[uint64]bool{}
	for _, f := range CompileBridge(&cases["erspan_v2"].in, br1) {
		var key uint64
		for _, a := range f.Actions {
			switch a.Type {
			case ActSetTunID:
				key = a.Value
			case ActSetErspanDir:
				if dirTo[key] == nil {
					dirTo[key] = map[uint64]bool{}
				}
				dirTo[key][a.Value] = true
			}
		}
	}
	if !dirTo[6][1] || dirTo[6][0] || !dirTo[5][0] || dirTo[5][1] {
		t.Errorf("erspan_dir by key: %v, want key 6 (N, ingress only) 1 and key 5 (M, mixed) 0", dirTo)
	}
	// The key beyond 1023 keeps the session pending, naming the limit.
	r, _ := Analyze(&cases["erspan_key_too_big"].in).Report("s1")
	if r.Ready() || !contains(r.Reason(), "ERSPAN_V1 maximum 1023") {
		t.Errorf("key 1024 on ERSPAN: report %q", r.Reason())
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestErspanActionText: the ERSPAN set_fields print as ovs-ofctl prints them and parse back.
func TestErspanActionText(t *testing.T) {
	for _, c := range []struct {
		a    Action
		text string
	}{
		{Action{Type: ActSetErspanVer, Value: 2}, "set_field:2->tun_erspan_ver"},
		{Action{Type: ActSetErspanIdx, Value: 7}, "set_field:0x7->tun_erspan_idx"},
		{Action{Type: ActSetErspanDir, Value: 1}, "set_field:1->tun_erspan_dir"},
		{Action{Type: ActSetErspanHwid, Value: 5}, "set_field:0x5->tun_erspan_hwid"},
	} {
		if got := c.a.String(); got != c.text {
			t.Errorf("%+v prints %q, want %q", c.a, got, c.text)
		}
		back, err := parseAction(c.text)
		if err != nil || back != c.a {
			t.Errorf("%q parses to %+v, %v", c.text, back, err)
		}
	}
	for _, bad := range []string{"set_field:2->tun_erspan_dir", "set_field:0x100000->tun_erspan_idx", "set_field:1->tun_erspan_nope"} {
		if a, err := parseAction(bad); err == nil {
			t.Errorf("%q parsed to %+v", bad, a)
		}
	}
}

// randomEncaps gives each flow network of a random world an encapsulation of the four (keys stay below 1023, the
// ERSPAN maximum), drawing last so that the rest of the world is what it was before ERSPAN existed.
func randomEncaps(r *rand.Rand, w *world) {
	enc := map[string]model.Encapsulation{}
	for _, fn := range w.fns {
		enc[fn] = model.Encapsulations()[r.IntN(len(model.Encapsulations()))]
	}
	for i := range w.in.Sessions {
		w.in.Sessions[i].Encapsulation = enc[w.in.Sessions[i].FlowNetwork]
	}
}
