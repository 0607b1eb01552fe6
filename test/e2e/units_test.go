package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestParsePcap: frames written as pcap (both byte orders, micro- and nanosecond
// timestamps) decode to what was written; a record cut short at the end (tcpdump
// still writing) is left out; a file that is not pcap is an error.
func TestParsePcap(t *testing.T) {
	echo := ipv4Frame("02:00:00:00:00:01", "02:00:00:00:00:02", "198.18.1.1", "198.18.1.2", 1, echoRequest(77, 5))
	tagged := append(append(append([]byte{}, echo[:12]...), 0x81, 0x00, 0x00, 0x2a), echo[12:]...)
	garp := GratuitousARP("02:00:00:00:00:03", "198.18.1.3")
	when := time.Unix(1700000000, 123456000)
	for _, tc := range []struct {
		name string
		bo   binary.AppendByteOrder
		nano bool
	}{{"little-micro", binary.LittleEndian, false}, {"big-micro", binary.BigEndian, false}, {"little-nano", binary.LittleEndian, true}} {
		t.Run(tc.name, func(t *testing.T) {
			file := writePcap(tc.bo, tc.nano, when, echo, tagged, garp)
			frames, err := parsePcap(append(file, file[24:24+20]...)) // + a cut-off record
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 3 {
				t.Fatalf("got %d frames, want 3:\n%s", len(frames), FramesString(frames))
			}
			f := frames[0]
			if !f.Time.Equal(when) || f.Src.String() != "02:00:00:00:00:01" || f.VLAN != -1 ||
				!f.IsEcho(ICMPEchoRequest, "198.18.1.1", "198.18.1.2") || f.ICMPID != 77 || f.ICMPSeq != 5 {
				t.Errorf("echo frame decoded as %s", f)
			}
			if f := frames[1]; f.VLAN != 42 || !f.IsEcho(ICMPEchoRequest, "198.18.1.1", "198.18.1.2") {
				t.Errorf("tagged frame decoded as %s", f)
			}
			if f := frames[2]; f.EtherType != 0x0806 || f.Proto != 0 || f.Dst.String() != "ff:ff:ff:ff:ff:ff" {
				t.Errorf("ARP frame decoded as %s", f)
			}
			p := PingResult{Src: "198.18.1.1", Dst: "198.18.1.2", ID: 77}
			if got := CountPing(frames, p); got != (PingCount{Requests: 2, Other: 1}) {
				t.Errorf("CountPing = %+v", got)
			}
			p.ID = 78
			if got := CountPing(frames, p); got != (PingCount{Other: 3}) {
				t.Errorf("CountPing with another id = %+v", got)
			}
		})
	}
	if _, err := parsePcap([]byte(strings.Repeat("x", 40))); err == nil {
		t.Error("parsePcap accepted a file with a bad magic number")
	}
}

func writePcap(bo binary.AppendByteOrder, nano bool, when time.Time, frames ...[]byte) []byte {
	magic := uint32(0xa1b2c3d4)
	frac := uint32(when.Nanosecond() / 1000)
	if nano {
		magic, frac = 0xa1b23c4d, uint32(when.Nanosecond())
	}
	b := bo.AppendUint32(nil, magic)
	b = bo.AppendUint16(b, 2)
	b = bo.AppendUint16(b, 4)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 65535)
	b = bo.AppendUint32(b, 1)
	for _, f := range frames {
		b = bo.AppendUint32(b, uint32(when.Unix()))
		b = bo.AppendUint32(b, frac)
		b = bo.AppendUint32(b, uint32(len(f)))
		b = bo.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func ipv4Frame(src, dst, srcIP, dstIP string, proto byte, payload []byte) []byte {
	f := mustMAC(dst)
	f = append(f, mustMAC(src)...)
	f = append(f, 0x08, 0x00)
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	s, d := netip.MustParseAddr(srcIP).As4(), netip.MustParseAddr(dstIP).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], inetChecksum(h))
	return append(append(f, h...), payload...)
}

func mustMAC(s string) []byte {
	g := GratuitousARP(s, "0.0.0.0")
	return append([]byte(nil), g[6:12]...)
}

// TestGraphQLClient: the client sends the document, variables and token, decodes
// data, and turns "errors" into *GraphQLErrors with code and rule, whatever the
// HTTP status; a response that is not GraphQL is an error quoting it.
func TestGraphQLClient(t *testing.T) {
	var gotAuth string
	var gotReq map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		_ = json.NewDecoder(r.Body).Decode(&gotReq)
		switch gotReq["query"] {
		case "ok":
			_, _ = w.Write([]byte(`{"data":{"clusters":[{"uuid":"c1","name":"one"}]}}`))
		case "refused":
			_, _ = w.Write([]byte(`{"data":null,"errors":[{"message":"session s: destination is the default NIC","path":["addPortMirrorSession"],"extensions":{"code":"VALIDATION","rule":"DESTINATION_IS_DEFAULT_NIC"}}]}`))
		case "unauth":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"message":"no token","extensions":{"code":"UNAUTHENTICATED"}}]}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`<html>bad gateway</html>`))
		}
	}))
	defer srv.Close()
	c := &GraphQLClient{URL: srv.URL, Token: "s3cret"}

	var out struct{ Clusters []struct{ UUID, Name string } }
	if err := c.Do(t.Context(), "ok", map[string]any{"x": 1}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 1 || out.Clusters[0].Name != "one" {
		t.Errorf("decoded %+v", out)
	}
	if gotAuth != "Bearer s3cret" || gotReq["variables"].(map[string]any)["x"] != 1.0 {
		t.Errorf("request: auth %q, body %v", gotAuth, gotReq)
	}
	for _, tc := range []struct{ query, code, rule string }{
		{"refused", "VALIDATION", "DESTINATION_IS_DEFAULT_NIC"},
		{"unauth", "UNAUTHENTICATED", ""},
	} {
		err := c.Do(t.Context(), tc.query, nil, nil)
		if ErrorCode(err) != tc.code || ErrorRule(err) != tc.rule {
			t.Errorf("%s: err %v: code %q rule %q, want %q %q", tc.query, err, ErrorCode(err), ErrorRule(err), tc.code, tc.rule)
		}
	}
	calls := 0
	c.Eventually(t, 5*time.Second, "ok", nil, &out, func() (bool, string) {
		calls++
		return calls == 3 && len(out.Clusters) == 1, fmt.Sprintf("call %d", calls)
	})
	if calls != 3 {
		t.Errorf("Eventually stopped after %d calls, want 3", calls)
	}
	err := c.Do(t.Context(), "other", nil, nil)
	if err == nil || ErrorCode(err) != "" || !strings.Contains(err.Error(), "bad gateway") || !strings.Contains(err.Error(), "502") {
		t.Errorf("non-GraphQL response: err %v", err)
	}
}
