package flows

import (
	"slices"
	"strings"
	"testing"
)

func TestFlowStringRoundTrip(t *testing.T) {
	mc, mcMask := MatchMulticast()
	cases := []struct {
		flow Flow
		want string
	}{
		{Flow{Cookie: CookieOurs | 1, Actions: []Action{{Type: ActNormal}}},
			"cookie=0x504d000000000001, table=0, priority=0 actions=NORMAL"},
		{Flow{Cookie: CookieOurs | 7, Priority: 600, Match: Match{InPort: 3}},
			"cookie=0x504d000000000007, table=0, priority=600, in_port=3 actions=drop"},
		{Flow{Cookie: CookieOurs | 6, Priority: 500, Match: Match{InPort: 9, HasTunID: true},
			Actions: []Action{{Type: ActOutput, Port: 4}}},
			"cookie=0x504d000000000006, table=0, priority=500, in_port=9,tun_id=0x0 actions=output:4"},
		{Flow{Cookie: CookieOurs | 4, Priority: 300,
			Match: Match{InPort: 3, EthDst: MAC{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, EthDstMask: exactMask()},
			Actions: []Action{{Type: ActNormal}, {Type: ActSetTunID, Value: 5},
				{Type: ActSetTunDst, IP: MustIPv4("198.18.0.2")}, {Type: ActOutput, Port: 9}}},
			"cookie=0x504d000000000004, table=0, priority=300, in_port=3,dl_dst=aa:bb:cc:dd:ee:ff actions=NORMAL,set_field:0x5->tun_id,set_field:198.18.0.2->tun_dst,output:9"},
		{Flow{Cookie: CookieOurs | 2, Priority: 100, Match: Match{EthDst: mc, EthDstMask: mcMask},
			Actions: []Action{{Type: ActNormal}, {Type: ActOutput, Port: 2}}},
			"cookie=0x504d000000000002, table=0, priority=100, dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=NORMAL,output:2"},
	}
	for _, c := range cases {
		if got := c.flow.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
		back, err := ParseFlow(c.want)
		if err != nil {
			t.Errorf("ParseFlow(%q): %v", c.want, err)
			continue
		}
		if back.String() != c.want || back.Key() != c.flow.Key() {
			t.Errorf("ParseFlow(%q) = %s (key %+v), want key %+v", c.want, back, back.Key(), c.flow.Key())
		}
	}
	// A dump-flows line with statistics parses to the same flow.
	line := " cookie=0x504d000000000003, duration=1.234s, table=0, n_packets=0, n_bytes=0, priority=200,in_port=1 actions=NORMAL,output:3"
	f, err := ParseFlow(line)
	if err != nil || f.String() != "cookie=0x504d000000000003, table=0, priority=200, in_port=1 actions=NORMAL,output:3" {
		t.Errorf("ParseFlow(dump line) = %s, %v", f, err)
	}
}

func TestParseFlowRejects(t *testing.T) {
	cases := map[string]string{
		"priority=1":                                "no actions=",
		"priority=1, dl_vlan=3 actions=NORMAL":      `field "dl_vlan=3"`,
		"priority=70000 actions=NORMAL":             `field "priority=70000"`,
		"priority=1, dl_dst=aa:bb actions=NORMAL":   `field "dl_dst=aa:bb"`,
		"priority=1 actions=NORMAL,mod_vlan_vid:3":  `action "mod_vlan_vid:3"`,
		"priority=1 actions=set_field:::1->tun_dst": "is not IPv4",
		"priority=1, in_port=0 actions=NORMAL":      "in_port 0",
	}
	for in, want := range cases {
		_, err := ParseFlow(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFlow(%q) error = %v, want one mentioning %q", in, err, want)
		}
	}
}

func TestParseMAC(t *testing.T) {
	if m, err := ParseMAC("AA:bb:0c:DD:ee:0F"); err != nil || m.String() != "aa:bb:0c:dd:ee:0f" {
		t.Errorf("ParseMAC = %v, %v", m, err)
	}
	for _, bad := range []string{"", "aa:bb:cc:dd:ee", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:fg", "aa:bb:cc:dd:ee:ff:00"} {
		if _, err := ParseMAC(bad); err == nil || !strings.Contains(err.Error(), "MAC") {
			t.Errorf("ParseMAC(%q) error = %v, want one naming the MAC", bad, err)
		}
	}
}

func TestSplitActions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"NORMAL,set_field:0x5->tun_id,output:9", []string{"NORMAL", "set_field:0x5->tun_id", "output:9"}},
		{"set(tunnel(tun_id=0x2a,dst=198.18.0.2)),clone(tnl_push(header(a,b)),out_port(3)),1",
			[]string{"set(tunnel(tun_id=0x2a,dst=198.18.0.2))", "clone(tnl_push(header(a,b)),out_port(3))", "1"}},
		{" drop ", []string{"drop"}},
		{"", nil},
	} {
		if got := SplitActions(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitActions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
