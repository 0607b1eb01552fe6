package model

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFilterRuleParse(t *testing.T) {
	tests := []struct {
		rule    FilterRule
		want    FilterRule // canonical form, when valid
		wantErr string
	}{
		{rule: FilterRule{}, want: FilterRule{Action: FilterAccept}},
		{rule: FilterRule{Action: FilterReject, Protocol: " TCP ", DestinationPorts: "0080"},
			want: FilterRule{Action: FilterReject, Protocol: "tcp", DestinationPorts: "80"}},
		{rule: FilterRule{Protocol: "udp", SourceCIDR: "198.18.1.9/24", SourcePorts: "1024-65535"},
			want: FilterRule{Action: FilterAccept, Protocol: "udp", SourceCIDR: "198.18.1.0/24", SourcePorts: "1024-65535"}},
		{rule: FilterRule{DestinationCIDR: "2001:db8::1"}, want: FilterRule{Action: FilterAccept, DestinationCIDR: "2001:db8::1/128"}},
		{rule: FilterRule{Protocol: "47"}, want: FilterRule{Action: FilterAccept, Protocol: "47"}},
		{rule: FilterRule{Protocol: "6", DestinationPorts: "22-22"}, want: FilterRule{Action: FilterAccept, Protocol: "6", DestinationPorts: "22"}},
		{rule: FilterRule{Action: "DROP"}, wantErr: "action"},
		{rule: FilterRule{Protocol: "sctp"}, wantErr: "protocol"},
		{rule: FilterRule{Protocol: "256"}, wantErr: "protocol"},
		{rule: FilterRule{SourceCIDR: "198.18.0.0/33"}, wantErr: "sourceCidr"},
		{rule: FilterRule{DestinationCIDR: "fe80::1%eth0/64"}, wantErr: "destinationCidr"},
		{rule: FilterRule{SourceCIDR: "10.0.0.0/8", DestinationCIDR: "2001:db8::/32"}, wantErr: "different IP families"},
		{rule: FilterRule{Protocol: "icmp", SourceCIDR: "2001:db8::/32"}, wantErr: "IPv4 only"},
		{rule: FilterRule{Protocol: "icmpv6", SourceCIDR: "10.0.0.0/8"}, wantErr: "IPv6 only"},
		{rule: FilterRule{Protocol: "arp", SourceCIDR: "10.0.0.0/8"}, wantErr: "arp"},
		{rule: FilterRule{Protocol: "icmp", DestinationPorts: "80"}, wantErr: "tcp and udp only"},
		{rule: FilterRule{DestinationPorts: "80"}, wantErr: "tcp and udp only"},
		{rule: FilterRule{Protocol: "tcp", DestinationPorts: "90-80"}, wantErr: "above its last"},
		{rule: FilterRule{Protocol: "tcp", SourcePorts: "65536"}, wantErr: "sourcePorts"},
		{rule: FilterRule{Protocol: "tcp", SourcePorts: "http"}, wantErr: "sourcePorts"},
	}
	for _, tc := range tests {
		got, err := tc.rule.Canonical()
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: error %v, want one mentioning %q", tc.rule, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tc.rule, err)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("%+v: canonical %+v, want %+v", tc.rule, got, tc.want)
		}
	}
}

// minPrefixCover is the size of the smallest set of prefix blocks covering [lo, hi] exactly, computed by
// dynamic programming over the binary trie (independent of PortMasks' greedy walk).
func minPrefixCover(lo, hi, blockLo uint32, size uint32) int {
	blockHi := blockLo + size - 1
	switch {
	case hi < blockLo || lo > blockHi:
		return 0
	case lo <= blockLo && blockHi <= hi:
		return 1
	}
	half := size / 2
	return minPrefixCover(lo, hi, blockLo, half) + minPrefixCover(lo, hi, blockLo+half, half)
}

func TestPortMasksExactAndFewest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ranges := []PortRange{{0, 65535}, {80, 80}, {1024, 65535}, {1, 65534}, {0, 0}, {65535, 65535}, {8000, 8100}}
	for range 300 {
		a, b := uint16(r.IntN(65536)), uint16(r.IntN(65536))
		ranges = append(ranges, PortRange{min(a, b), max(a, b)})
	}
	for _, pr := range ranges {
		masks := pr.PortMasks()
		if want := minPrefixCover(uint32(pr.Lo), uint32(pr.Hi), 0, 1<<16); len(masks) != want {
			t.Errorf("%v: %d masked matches, the fewest prefix blocks are %d", pr, len(masks), want)
		}
		// Every port is covered exactly when it is in the range, and by one match at most.
		for p := 0; p < 1<<16; p += 1 + r.IntN(97) {
			n := 0
			for _, m := range masks {
				if uint16(p)&m[1] == m[0] {
					n++
				}
			}
			in := uint16(p) >= pr.Lo && uint16(p) <= pr.Hi
			if (in && n != 1) || (!in && n != 0) {
				t.Fatalf("%v: port %d matched by %d of %v", pr, p, n, masks)
			}
		}
		for _, p := range []uint16{pr.Lo, pr.Hi} {
			n := 0
			for _, m := range masks {
				if p&m[1] == m[0] {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v: edge %d matched %d times", pr, p, n)
			}
		}
	}
}

func TestFilterKey(t *testing.T) {
	a := []FilterRule{{Action: FilterAccept, Protocol: "tcp", DestinationPorts: "80"}}
	b := []FilterRule{{Action: FilterAccept, Protocol: "tcp", DestinationPorts: "443"}}
	if FilterKey(nil) != "" || FilterKey(a) == FilterKey(b) || FilterKey(a) != FilterKey([]FilterRule{a[0]}) {
		t.Errorf("FilterKey: nil %q, a %q, b %q", FilterKey(nil), FilterKey(a), FilterKey(b))
	}
}
