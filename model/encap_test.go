package model

import "testing"

func TestEncapsulations(t *testing.T) {
	for _, c := range []struct {
		e        Encapsulation
		maxKey   uint32
		portType string
		ver      uint8
	}{
		{GRE, 1<<32 - 1, "gre", 0},
		{VXLAN, 1<<24 - 1, "vxlan", 0},
		{ERSPANv1, 1023, "erspan", 1},
		{ERSPANv2, 1023, "erspan", 2},
	} {
		if !c.e.Valid() || c.e.MaxTunnelKey() != c.maxKey || c.e.PortType() != c.portType || c.e.ERSPANVersion() != c.ver ||
			c.e.IsERSPAN() != (c.ver != 0) {
			t.Errorf("%s: valid %v, max key %d, port type %q, version %d", c.e, c.e.Valid(), c.e.MaxTunnelKey(), c.e.PortType(), c.e.ERSPANVersion())
		}
	}
	if Encapsulation("IPIP").Valid() || Encapsulation("").Valid() || Encapsulation("erspan_v1").Valid() {
		t.Error("an unknown encapsulation is valid")
	}
	conflicts := map[[2]Encapsulation]bool{{GRE, ERSPANv1}: true, {GRE, ERSPANv2}: true, {ERSPANv1, GRE}: true, {ERSPANv2, GRE}: true}
	for _, a := range Encapsulations() {
		for _, b := range Encapsulations() {
			if got := a.ConflictsWith(b); got != conflicts[[2]Encapsulation{a, b}] {
				t.Errorf("%s conflicts with %s: %v", a, b, got)
			}
		}
	}
}
