package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"
)

// isoEtherType marks the frames of the isolation checks (an IEEE local experimental EtherType).
const isoEtherType = 0x88b5

// isoFrame is one frame of the isolation checks: to dst, tagged with vlan (-1: untagged), carrying label.
type isoFrame struct {
	label string
	dst   string
	vlan  int
}

func (f isoFrame) bytes(src string) []byte {
	d, _ := net.ParseMAC(f.dst)
	s, _ := net.ParseMAC(src)
	b := append(append([]byte{}, d...), s...)
	if f.vlan >= 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, uint16(f.vlan))
	}
	b = binary.BigEndian.AppendUint16(b, isoEtherType)
	b = append(b, []byte("pm-iso:"+f.label+";")...)
	for len(b) < 64 {
		b = append(b, 0)
	}
	return b
}

// isoFrames is every frame a destination port must never receive from NORMAL: broadcasts, unknown unicasts
// and unicasts to the destination's own MAC, untagged, tagged with VLAN 4095, with the port's own VLAN and with
// another one.
func isoFrames(dstMAC string, ownTag int) []isoFrame {
	var out []isoFrame
	for _, v := range []int{-1, 4095, ownTag, 1} {
		if v == 0 {
			continue
		}
		tag := "untagged"
		if v >= 0 {
			tag = fmt.Sprintf("vlan%d", v)
		}
		out = append(out,
			isoFrame{"broadcast/" + tag, "ff:ff:ff:ff:ff:ff", v},
			isoFrame{"multicast/" + tag, "01:00:5e:00:00:fb", v},
			isoFrame{"unknown-unicast/" + tag, "02:00:c6:12:ee:ee", v},
			isoFrame{"to-destination-mac/" + tag, dstMAC, v})
	}
	return out
}

// isoLeaks sends every frame from src's NIC and returns the labels of those the capture received (after a quiet
// window, and a marker frame that proves the capture ran: sent with explicit delivery when marker is set).
func isoLeaks(t *testing.T, src *VM, srcNIC *NIC, c *Capture, frames []isoFrame) []string {
	t.Helper()
	for _, f := range frames {
		src.SendFrame(t, srcNIC, f.bytes(srcNIC.MAC))
	}
	time.Sleep(300 * time.Millisecond) // a quiet window: proving absence
	got := map[string]bool{}
	for _, fr := range c.Stop(t) {
		if fr.EtherType != isoEtherType {
			continue
		}
		s := string(fr.Data)
		if i := strings.Index(s, "pm-iso:"); i >= 0 {
			s = s[i+len("pm-iso:"):]
			if j := strings.IndexByte(s, ';'); j >= 0 {
				got[s[:j]] = true
			}
		}
	}
	var out []string
	for l := range got {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
