package ofwire

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"portmirror/flows"
)

// meterConfigEntry is a METER_CONFIG reply entry as a switch sends it for m.
func meterConfigEntry(m flows.Meter) []byte {
	mod, _ := AppendMeterMod(nil, 1, MeterAdd, m)
	body := mod[8+2:] // after the header and the command: flags, meter_id, bands
	e := binary.BigEndian.AppendUint16(nil, uint16(2+len(body)))
	return append(e, body...)
}

// meterStatsEntry is a METER reply entry.
func meterStatsEntry(id uint32, in uint64, dropped ...uint64) []byte {
	e := binary.BigEndian.AppendUint32(nil, id)
	e = binary.BigEndian.AppendUint16(e, uint16(meterStatsFixed+bandStatsLen*len(dropped)))
	e = append(e, 0, 0, 0, 0, 0, 0)
	e = binary.BigEndian.AppendUint32(e, 1)
	e = binary.BigEndian.AppendUint64(e, in)
	e = binary.BigEndian.AppendUint64(e, in*100)
	e = append(e, 0, 0, 0, 7, 0, 0, 0, 0)
	for _, d := range dropped {
		e = binary.BigEndian.AppendUint64(e, d)
		e = binary.BigEndian.AppendUint64(e, d*100)
	}
	return e
}

func TestMeterModBytes(t *testing.T) {
	got, err := AppendMeterMod(nil, 7, MeterAdd, flows.Meter{ID: 0x01020304, Kbps: 1000, BurstKb: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{4, 29, 0, 32, 0, 0, 0, 7, // header
		0, 0, 0, 13, 1, 2, 3, 4, // ADD, kbps|burst|stats, id
		0, 1, 0, 16, 0, 0, 0x03, 0xe8, 0, 0, 0, 100, 0, 0, 0, 0} // drop band 1000 kbps, burst 100
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ADD\n got % x\nwant % x", got, want)
	}
	del, err := AppendMeterMod(nil, 8, MeterDelete, flows.Meter{ID: MeterAll})
	if err != nil || len(del) != 16 || binary.BigEndian.Uint16(del[8:]) != 2 || binary.BigEndian.Uint32(del[12:]) != MeterAll {
		t.Errorf("DELETE all: % x %v", del, err)
	}
	for _, bad := range []struct {
		cmd MeterModCommand
		m   flows.Meter
	}{{MeterAdd, flows.Meter{ID: 0, Kbps: 1}}, {MeterAdd, flows.Meter{ID: 1}}, {MeterAdd, flows.Meter{ID: MeterAll, Kbps: 1}}, {3, flows.Meter{ID: 1, Kbps: 1}}} {
		if b, err := AppendMeterMod([]byte{9}, 1, bad.cmd, bad.m); err == nil || len(b) != 1 {
			t.Errorf("%v %+v: accepted (% x)", bad.cmd, bad.m, b)
		}
	}
	req := AppendMeterRequest(nil, 3, MultipartMeterConfig, MeterAll)
	if want := []byte{4, 18, 0, 24, 0, 0, 0, 3, 0, 10, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}; !reflect.DeepEqual(req, want) {
		t.Errorf("request % x, want % x", req, want)
	}
}

func TestMeterConfigRoundTrip(t *testing.T) {
	ms := []flows.Meter{{ID: 1, Kbps: 64, BurstKb: 10}, {ID: 0x7fffffff, Kbps: 1 << 30, BurstKb: 1 << 20}}
	var body []byte
	for _, m := range ms {
		body = append(body, meterConfigEntry(m)...)
	}
	cs, err := DecodeMeterConfigs(body)
	if err != nil || len(cs) != len(ms) {
		t.Fatalf("%v %v", cs, err)
	}
	for i, c := range cs {
		if m, ok := c.Meter(); !ok || m != ms[i] {
			t.Errorf("entry %d: %+v (%v), want %+v", i, m, ok, ms[i])
		}
	}
	// A meter the controller did not make (pktps, two bands) is not taken for one.
	foreign := MeterConfig{ID: 3, Flags: MeterFlagPktps, Bands: []MeterBand{{MeterBandDrop, 5, 5}}}
	if _, ok := foreign.Meter(); ok {
		t.Error("a pktps meter passes for ours")
	}
	if _, err := DecodeMeterConfigs(body[:len(body)-3]); !errors.Is(err, ErrMalformed) {
		t.Errorf("cut reply: %v", err)
	}
}

func TestMeterStatsDecode(t *testing.T) {
	body := append(meterStatsEntry(5, 6000, 4001), meterStatsEntry(6, 10)...)
	st, err := DecodeMeterStats(body)
	if err != nil || len(st) != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	if p, b := st[0].Dropped(); st[0].ID != 5 || st[0].PacketsIn != 6000 || p != 4001 || b != 400100 || st[0].DurationSec != 7 {
		t.Errorf("entry 0: %+v", st[0])
	}
	if p, _ := st[1].Dropped(); p != 0 || len(st[1].Bands) != 0 {
		t.Errorf("entry 1: %+v", st[1])
	}
	if _, err := DecodeMeterStats(body[:45]); !errors.Is(err, ErrMalformed) {
		t.Errorf("cut reply: %v", err)
	}
}

// FuzzDecodeMeterConfigs: never panics; errors wrap ErrMalformed; an entry that is ours re-encodes to itself.
func FuzzDecodeMeterConfigs(f *testing.F) {
	f.Add(meterConfigEntry(flows.Meter{ID: 9, Kbps: 100, BurstKb: 10}))
	f.Add(append(meterConfigEntry(flows.Meter{ID: 1, Kbps: 1, BurstKb: 1}), 0, 8, 0, 0))
	f.Add([]byte{0, 24, 0, 13, 0, 0, 0, 1, 0, 1, 0, 12})
	f.Fuzz(func(t *testing.T, body []byte) {
		cs, err := DecodeMeterConfigs(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		for _, c := range cs {
			m, ok := c.Meter()
			if !ok || m.Kbps == 0 || m.ID == 0 || m.ID > 0xffff0000 {
				continue
			}
			again, err := DecodeMeterConfigs(meterConfigEntry(m))
			if err != nil || len(again) != 1 {
				t.Fatalf("re-decoded %+v: %v", again, err)
			}
			if m2, ok := again[0].Meter(); !ok || m2 != m {
				t.Fatalf("re-decoded %+v, want %+v", m2, m)
			}
		}
	})
}

// FuzzDecodeMeterStats: never panics; errors wrap ErrMalformed.
func FuzzDecodeMeterStats(f *testing.F) {
	f.Add(meterStatsEntry(5, 6000, 4001))
	f.Add(append(meterStatsEntry(5, 1), meterStatsEntry(7, 2, 1, 1)...))
	f.Add(meterStatsEntry(5, 1)[:39])
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := DecodeMeterStats(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		n := 0
		for _, s := range st {
			n += meterStatsFixed + bandStatsLen*len(s.Bands)
		}
		if n != len(body) {
			t.Fatalf("%d entries account for %d of %d bytes", len(st), n, len(body))
		}
	})
}
