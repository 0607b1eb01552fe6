package ofwire

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"portmirror/flows"
)

// erspanCopy is a copy as the compiler makes it toward an ERSPAN type II or III tunnel port.
func erspanCopy(ver uint64) flows.Flow {
	acts := []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 1023},
		{Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActSetErspanVer, Value: ver}}
	if ver == 1 {
		acts = append(acts, flows.Action{Type: flows.ActSetErspanIdx, Value: 0xabcde})
	} else {
		acts = append(acts, flows.Action{Type: flows.ActSetErspanDir, Value: 1}, flows.Action{Type: flows.ActSetErspanHwid, Value: 0x3f})
	}
	acts = append(acts, flows.Action{Type: flows.ActOutputTrunc, Port: 11, Value: 96})
	return flows.Flow{Priority: 200, Cookie: flows.CookieOurs | 3, Match: flows.Match{InPort: 1}, Actions: acts}
}

// TestErspanSetFieldBytes: the ERSPAN set_fields are Nicira experimenter OXMs, padded to 8 bytes, and decode back
// to the same flow.
func TestErspanSetFieldBytes(t *testing.T) {
	for _, c := range []struct {
		ver  uint64
		want [][]byte
	}{
		{1, [][]byte{
			{0, 25, 0, 16, 0xff, 0xff, 12 << 1, 5, 0, 0, 0x23, 0x20, 1, 0, 0, 0},               // tun_erspan_ver=1
			{0, 25, 0, 16, 0xff, 0xff, 11 << 1, 8, 0, 0, 0x23, 0x20, 0x00, 0x0a, 0xbc, 0xde}}}, // tun_erspan_idx
		{2, [][]byte{
			{0, 25, 0, 16, 0xff, 0xff, 12 << 1, 5, 0, 0, 0x23, 0x20, 2, 0, 0, 0},      // tun_erspan_ver=2
			{0, 25, 0, 16, 0xff, 0xff, 13 << 1, 5, 0, 0, 0x23, 0x20, 1, 0, 0, 0},      // tun_erspan_dir=1
			{0, 25, 0, 16, 0xff, 0xff, 14 << 1, 5, 0, 0, 0x23, 0x20, 0x3f, 0, 0, 0}}}, // tun_erspan_hwid
	} {
		f := erspanCopy(c.ver)
		fm, err := AppendFlowMod(nil, 1, FlowAdd, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !bytes.Contains(fm, w) {
				t.Errorf("v%d: % x not in % x", c.ver, w, fm)
			}
		}
		got, err := DecodeFlowStats(flowStatFromFlowMod(fm, 0))
		if err != nil || len(got) != 1 || got[0].Foreign != "" || !reflect.DeepEqual(got[0].Flow, f) {
			t.Errorf("v%d: decoded %+v, %v; want %+v", c.ver, got, err, f)
		}
	}
	for _, bad := range []flows.Action{{Type: flows.ActSetErspanVer, Value: 16}, {Type: flows.ActSetErspanIdx, Value: 1 << 20},
		{Type: flows.ActSetErspanDir, Value: 2}, {Type: flows.ActSetErspanHwid, Value: 64}} {
		if _, err := AppendFlowMod(nil, 1, FlowAdd, flows.Flow{Actions: []flows.Action{bad}}); err == nil {
			t.Errorf("%v encoded", bad)
		}
	}
	// A value beyond the field, another experimenter or a masked field decodes as an unknown action.
	for _, raw := range [][]byte{
		{0, 25, 0, 16, 0xff, 0xff, 12 << 1, 5, 0, 0, 0x23, 0x20, 0x10, 0, 0, 0},
		{0, 25, 0, 16, 0xff, 0xff, 12 << 1, 5, 0, 0, 0x23, 0x21, 1, 0, 0, 0},
		{0, 25, 0, 16, 0xff, 0xff, 12<<1 | 1, 6, 0, 0, 0x23, 0x20, 1, 1, 0, 0},
		{0, 25, 0, 16, 0xff, 0xff, 11 << 1, 5, 0, 0, 0x23, 0x20, 1, 0, 0, 0},
	} {
		acts, err := decodeActions(raw)
		if err != nil || len(acts) != 1 || acts[0].Type != ActUnknown {
			t.Errorf("% x decoded to %+v, %v", raw, acts, err)
		}
	}
}

// TestErspanSetFieldOVS: ovs-ofctl reads the bytes ofwire writes as the ERSPAN set_fields the compiler meant.
func TestErspanSetFieldOVS(t *testing.T) {
	ofctl, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		t.Skip("ovs-ofctl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ver, want := range map[uint64]string{
		1: "set_field:0x3ff->tun_id,set_field:198.18.0.2->tun_dst,set_field:1->tun_erspan_ver,set_field:0xabcde->tun_erspan_idx,output(port=11,max_len=96)",
		2: "set_field:0x3ff->tun_id,set_field:198.18.0.2->tun_dst,set_field:2->tun_erspan_ver,set_field:1->tun_erspan_dir,set_field:0x3f->tun_erspan_hwid,output(port=11,max_len=96)",
	} {
		fm, err := AppendFlowMod(nil, 1, FlowAdd, erspanCopy(ver))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "flowmod")
		if err := os.WriteFile(path, fm, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, ofctl, "ofp-parse", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("v%d: ovs-ofctl ofp-parse says %s (%v), want %s", ver, out, err, want)
		}
	}
}
