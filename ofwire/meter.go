package ofwire

import (
	"encoding/binary"
	"fmt"

	"portmirror/flows"
)

// Meters (OpenFlow 1.3 §7.3.4.4 and the METER and METER_CONFIG multiparts).
const (
	MultipartMeter       uint16 = 9  // OFPMP_METER: statistics
	MultipartMeterConfig uint16 = 10 // OFPMP_METER_CONFIG

	// MeterAll is OFPM_ALL: every meter, in a multipart request or a delete.
	MeterAll uint32 = 0xffffffff

	// Meter flags: rates in kbps, a burst size, statistics kept.
	MeterFlagKbps  uint16 = 1
	MeterFlagPktps uint16 = 2
	MeterFlagBurst uint16 = 4
	MeterFlagStats uint16 = 8

	// MeterBandDrop is OFPMBT_DROP.
	MeterBandDrop uint16 = 1

	meterConfigFixed = 8  // length, flags, meter_id
	meterStatsFixed  = 40 // meter_id, len, pad, flow_count, packet_in, byte_in, duration
	meterBandLen     = 16
	bandStatsLen     = 16
)

// MeterModCommand is OFPMC_*.
type MeterModCommand uint16

const (
	MeterAdd MeterModCommand = iota
	MeterModify
	MeterDelete
)

func (c MeterModCommand) String() string {
	switch c {
	case MeterAdd:
		return "ADD"
	case MeterModify:
		return "MODIFY"
	case MeterDelete:
		return "DELETE"
	}
	return fmt.Sprintf("METER_MOD_%d", uint16(c))
}

// AppendMeterMod appends a METER_MOD for m: ADD or MODIFY with flags kbps, burst and stats and one drop band of
// m.Kbps and m.BurstKb; DELETE with no band (m.ID MeterAll deletes every meter).
func AppendMeterMod(dst []byte, xid uint32, cmd MeterModCommand, m flows.Meter) ([]byte, error) {
	if cmd > MeterDelete {
		return dst, fmt.Errorf("meter_mod command %d is not one of ADD, MODIFY, DELETE", cmd)
	}
	if m.ID == 0 || (m.ID > 0xffff0000 && !(cmd == MeterDelete && m.ID == MeterAll)) {
		return dst, fmt.Errorf("meter id %d is not one of 1..0xffff0000", m.ID)
	}
	if cmd != MeterDelete && m.Kbps == 0 {
		return dst, fmt.Errorf("meter %d: a rate of 0 kbps", m.ID)
	}
	start := len(dst)
	dst = appendHeader(dst, TypeMeterMod, xid)
	dst = binary.BigEndian.AppendUint16(dst, uint16(cmd))
	var flags uint16
	if cmd != MeterDelete {
		flags = MeterFlagKbps | MeterFlagBurst | MeterFlagStats
	}
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, m.ID)
	if cmd != MeterDelete {
		dst = binary.BigEndian.AppendUint16(dst, MeterBandDrop)
		dst = binary.BigEndian.AppendUint16(dst, meterBandLen)
		dst = binary.BigEndian.AppendUint32(dst, m.Kbps)
		dst = binary.BigEndian.AppendUint32(dst, m.BurstKb)
		dst = append(dst, 0, 0, 0, 0)
	}
	return finish(dst, start)
}

// AppendMeterRequest appends a METER (statistics) or METER_CONFIG multipart request for one meter or MeterAll.
func AppendMeterRequest(dst []byte, xid uint32, mpType uint16, meterID uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeMultipartRequest, xid)
	dst = binary.BigEndian.AppendUint16(dst, mpType)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // flags, pad
	dst = binary.BigEndian.AppendUint32(dst, meterID)
	dst = append(dst, 0, 0, 0, 0)
	dst, _ = finish(dst, start)
	return dst
}

// MeterBand is one band of a meter's configuration.
type MeterBand struct {
	Type      uint16
	Rate      uint32
	BurstSize uint32
}

// MeterConfig is one entry of a METER_CONFIG reply.
type MeterConfig struct {
	ID    uint32
	Flags uint16
	Bands []MeterBand
}

// Meter returns the configuration as a flows.Meter, and whether it is one the controller could have made: kbps and
// burst flags, exactly one drop band.
func (c MeterConfig) Meter() (flows.Meter, bool) {
	m := flows.Meter{ID: c.ID}
	if len(c.Bands) != 1 || c.Bands[0].Type != MeterBandDrop || c.Flags&MeterFlagKbps == 0 || c.Flags&MeterFlagBurst == 0 ||
		c.Flags&MeterFlagStats == 0 {
		return m, false
	}
	m.Kbps, m.BurstKb = c.Bands[0].Rate, c.Bands[0].BurstSize
	return m, true
}

// DecodeMeterConfigs decodes the body of a METER_CONFIG multipart reply (the entries after the multipart header).
func DecodeMeterConfigs(b []byte) ([]MeterConfig, error) {
	var out []MeterConfig
	for len(b) > 0 {
		if len(b) < meterConfigFixed {
			return out, malformed("meter-config entry %d: %d bytes left, an entry has at least %d", len(out), len(b), meterConfigFixed)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n < meterConfigFixed || n > len(b) || (n-meterConfigFixed)%meterBandLen != 0 {
			return out, malformed("meter-config entry %d: length %d with %d bytes left", len(out), n, len(b))
		}
		c := MeterConfig{Flags: binary.BigEndian.Uint16(b[2:]), ID: binary.BigEndian.Uint32(b[4:])}
		for bb := b[meterConfigFixed:n]; len(bb) > 0; bb = bb[meterBandLen:] {
			if l := binary.BigEndian.Uint16(bb[2:]); l != meterBandLen {
				return out, malformed("meter-config entry %d: band of length %d, want %d", len(out), l, meterBandLen)
			}
			c.Bands = append(c.Bands, MeterBand{Type: binary.BigEndian.Uint16(bb), Rate: binary.BigEndian.Uint32(bb[4:]),
				BurstSize: binary.BigEndian.Uint32(bb[8:])})
		}
		out = append(out, c)
		b = b[n:]
	}
	return out, nil
}

// BandStats are one band's counters: what it dropped.
type BandStats struct{ Packets, Bytes uint64 }

// MeterStats is one entry of a METER multipart reply.
type MeterStats struct {
	ID           uint32
	FlowCount    uint32
	PacketsIn    uint64
	BytesIn      uint64
	DurationSec  uint32
	DurationNsec uint32
	Bands        []BandStats
}

// Dropped is what the meter's bands dropped.
func (s MeterStats) Dropped() (packets, bytes uint64) {
	for _, b := range s.Bands {
		packets += b.Packets
		bytes += b.Bytes
	}
	return packets, bytes
}

// DecodeMeterStats decodes the body of a METER multipart reply.
func DecodeMeterStats(b []byte) ([]MeterStats, error) {
	var out []MeterStats
	for len(b) > 0 {
		if len(b) < meterStatsFixed {
			return out, malformed("meter-stats entry %d: %d bytes left, an entry has at least %d", len(out), len(b), meterStatsFixed)
		}
		n := int(binary.BigEndian.Uint16(b[4:]))
		if n < meterStatsFixed || n > len(b) || (n-meterStatsFixed)%bandStatsLen != 0 {
			return out, malformed("meter-stats entry %d: length %d with %d bytes left", len(out), n, len(b))
		}
		s := MeterStats{ID: binary.BigEndian.Uint32(b), FlowCount: binary.BigEndian.Uint32(b[12:]),
			PacketsIn: binary.BigEndian.Uint64(b[16:]), BytesIn: binary.BigEndian.Uint64(b[24:]),
			DurationSec: binary.BigEndian.Uint32(b[32:]), DurationNsec: binary.BigEndian.Uint32(b[36:])}
		for bb := b[meterStatsFixed:n]; len(bb) > 0; bb = bb[bandStatsLen:] {
			s.Bands = append(s.Bands, BandStats{Packets: binary.BigEndian.Uint64(bb), Bytes: binary.BigEndian.Uint64(bb[8:])})
		}
		out = append(out, s)
		b = b[n:]
	}
	return out, nil
}
