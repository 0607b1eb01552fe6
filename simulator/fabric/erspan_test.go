package fabric

import (
	"slices"
	"strings"
	"testing"

	"portmirror/simulator/dataplane"
)

// TestErspanCrossesTheFabric: an erspan port sends a copy only with tun_erspan_ver 1 or 2 and a 10-bit key (as
// OVS: "header build failed" otherwise), and the receiving erspan port sees the key and the header fields of the
// version the copy carried.
func TestErspanCrossesTheFabric(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sets    string // set_fields before the output
		match   string // what the receiver matches beside in_port and tun_id
		arrives bool
		why     string
	}{
		{"v1", "set_field:1->tun_erspan_ver,set_field:0x7->tun_erspan_idx", "tun_erspan_ver=1,tun_erspan_idx=0x7", true, ""},
		{"v2", "set_field:2->tun_erspan_ver,set_field:1->tun_erspan_dir,set_field:0x5->tun_erspan_hwid",
			"tun_erspan_ver=2,tun_erspan_dir=1,tun_erspan_hwid=0x5", true, ""},
		{"v2 carries no index", "set_field:2->tun_erspan_ver,set_field:0x7->tun_erspan_idx", "tun_erspan_idx=0x7", false, "priority 90"},
		{"no version", "set_field:0x7->tun_erspan_idx", "", false, "tun_erspan_ver 0 is not 1 or 2"},
		{"version 3", "set_field:3->tun_erspan_ver", "", false, "tun_erspan_ver 3 is not 1 or 2"},
		{"key too big", "set_field:1->tun_erspan_ver", "", false, "10-bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "0x3ff"
			if tc.name == "key too big" {
				key = "0x400"
			}
			m := "priority=100,in_port=100,tun_id=0x3ff"
			if tc.match != "" {
				m += "," + tc.match
			}
			f := New()
			host(t, f, "h1", "erspan", "198.18.0.1",
				"priority=100,in_port=1,actions=NORMAL,set_field:"+key+"->tun_id,set_field:198.18.0.2->tun_dst,"+tc.sets+",output(port=100,max_len=64)",
				"priority=0,actions=NORMAL")
			host(t, f, "h2", "erspan", "198.18.0.2", m+",actions=output:1", "priority=90,in_port=100,actions=drop", "priority=0,actions=NORMAL")
			arp := dataplane.BuildARPRequest(macA, ipA, ipB)
			d, err := f.Inject("h1", 1, arp)
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Contains(d.At(), "h2:vnet1")
			if got != tc.arrives {
				t.Fatalf("copy at the monitor: %v, want %v\n%s", got, tc.arrives, d.TraceString())
			}
			if tc.why != "" && !strings.Contains(d.TraceString(), tc.why) {
				t.Errorf("trace does not say %q:\n%s", tc.why, d.TraceString())
			}
		})
	}
}
