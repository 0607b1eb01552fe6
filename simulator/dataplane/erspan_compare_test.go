package dataplane

import (
	"fmt"
	"regexp"
	"strconv"
)

// The ERSPAN port of the sim-vs-OVS bridge: ofport 11, every header field from the flows.
var erspanPortOptions = []string{"type=erspan", "options:remote_ip=flow", "options:key=flow", "options:local_ip=198.18.0.1",
	"options:erspan_ver=flow", "options:erspan_idx=flow", "options:erspan_dir=flow", "options:erspan_hwid=flow",
	"ofport_request=11"}

// erspanPush matches OVS's datapath action for an ERSPAN encapsulation: the outer destination and the ERSPAN
// header as OVS prints it, e.g. erspan(ver=1,sid=0x7,idx=0x0).
var erspanPush = regexp.MustCompile(`^tnl_push\(.*ipv4\(src=[0-9.]+,dst=([0-9.]+),.*(erspan\([^)]*\))`)

// erspanKey renders a copy the evaluator sends to the erspan port the way the OVS side renders tnl_push.
func erspanKey(t Tunnel) string {
	h := fmt.Sprintf("erspan(ver=%d,sid=%#x", t.ErspanVer, t.ID)
	switch t.ErspanVer {
	case 1:
		h += fmt.Sprintf(",idx=%#x)", t.ErspanIdx)
	case 2:
		h += fmt.Sprintf(",dir=%d,hwid=%#x)", t.ErspanDir, t.ErspanHwid)
	default:
		h += ")"
	}
	return fmt.Sprintf("erspan %s->%v", h, t.Dst)
}

// parseErspanTunnel reads an ERSPAN field of a step's tunnel metadata (ovs-ofctl syntax).
func parseErspanTunnel(t *Tunnel, k, v string) {
	n, _ := strconv.ParseUint(v, 0, 32)
	switch k {
	case "tun_erspan_ver":
		t.ErspanVer = uint8(n)
	case "tun_erspan_idx":
		t.ErspanIdx = uint32(n)
	case "tun_erspan_dir":
		t.ErspanDir = uint8(n)
	case "tun_erspan_hwid":
		t.ErspanHwid = uint8(n)
	}
}

// erspanOVSCases are the ERSPAN cases of ovsCases.
func erspanOVSCases() []ovsCase {
	v1 := "set_field:0x3ff->tun_id,set_field:198.18.0.2->tun_dst,set_field:1->tun_erspan_ver,set_field:0x7->tun_erspan_idx"
	v2 := "set_field:0x5->tun_id,set_field:198.18.0.3->tun_dst,set_field:2->tun_erspan_ver,set_field:1->tun_erspan_dir,set_field:0x0->tun_erspan_hwid"
	return []ovsCase{
		{Name: "erspan copies of both versions, whole and cut",
			Flows: []string{"priority=100,in_port=1,actions=NORMAL," + v1 + ",output:11," + v2 + ",output(port=11,max_len=64)",
				"priority=90,in_port=2,actions=NORMAL," + v2 + ",set_field:0x3f->tun_erspan_hwid,output:11", normal},
			Steps: []step{trace(1, BuildUDP(macB, macA, ipA, ipB, 1, 9, make([]byte, 200))), trace(2, bcast(macB))}},
		{Name: "erspan copy without a version or with a key beyond 10 bits is dropped",
			Flows: []string{"priority=100,in_port=1,actions=NORMAL,set_field:0x5->tun_id,set_field:198.18.0.2->tun_dst,output:11",
				"priority=90,in_port=2,actions=NORMAL,set_field:0x400->tun_id,set_field:198.18.0.2->tun_dst,set_field:1->tun_erspan_ver,output:11,output:3",
				normal},
			Steps: []step{trace(1, bcast(macA)), trace(2, bcast(macB))}},
		{Name: "frames arriving on the erspan port",
			Flows: []string{"priority=100,in_port=11,tun_id=0x5,actions=output:2", "priority=80,in_port=11,actions=drop", normal},
			Steps: []step{
				{InPort: 11, Tunnel: "tun_id=0x5,tun_src=198.18.0.2,tun_dst=198.18.0.1,tun_erspan_ver=1,tun_erspan_idx=0x7", Frame: ucast(macA, macB)},
				{InPort: 11, Tunnel: "tun_id=0x5,tun_src=198.18.0.2,tun_dst=198.18.0.1,tun_erspan_ver=2,tun_erspan_dir=1", Frame: ucast(macA, macB)},
				{InPort: 11, Tunnel: "tun_id=0x6,tun_src=198.18.0.2,tun_dst=198.18.0.1,tun_erspan_ver=1", Frame: ucast(macA, macB)},
			}},
	}
}
