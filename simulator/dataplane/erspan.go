package dataplane

import (
	"fmt"
	"net/netip"
)

// headerProblem says why the port cannot encapsulate a frame with this tunnel metadata ("" when it can). As OVS
// 3.1 measured (ovs-3.1-mirroring-facts.md, section 3): an erspan port with flow-based fields needs
// tun_erspan_ver 1 or 2 set by the flow, and a tun_id that fits the 10-bit session id; otherwise OVS logs
// "header build failed" and the copy is dropped silently.
func (t TunnelConfig) headerProblem(m Tunnel) string {
	if t.Type != "erspan" {
		return ""
	}
	if m.ErspanVer != 1 && m.ErspanVer != 2 {
		return fmt.Sprintf("tun_erspan_ver %d is not 1 or 2", m.ErspanVer)
	}
	if m.ID > 1<<10-1 {
		return fmt.Sprintf("tun_id %#x does not fit the 10-bit ERSPAN session id", m.ID)
	}
	return ""
}

// Received is the tunnel metadata of a frame that a port of this type sent with m, from src to dst, as the peer's
// port receives it: the key cut to the encapsulation's width, the outer addresses, and for ERSPAN the fields the
// header carries for its version (type II: the index; type III: the direction and hardware id).
func (t TunnelConfig) Received(m Tunnel, src, dst netip.Addr) Tunnel {
	out := Tunnel{ID: m.ID & (1<<t.KeyBits() - 1), Src: src, Dst: dst}
	if t.Type != "erspan" {
		return out
	}
	out.ErspanVer = m.ErspanVer
	switch m.ErspanVer {
	case 1:
		out.ErspanIdx = m.ErspanIdx
	case 2:
		out.ErspanDir, out.ErspanHwid = m.ErspanDir, m.ErspanHwid
	}
	return out
}
