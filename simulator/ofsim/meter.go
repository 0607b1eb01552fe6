package ofsim

import (
	"encoding/binary"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// meterMod applies a METER_MOD: ADD and MODIFY with kbps and one drop band, DELETE (of one meter or all).
func (s *Switch) meterMod(b []byte) error {
	if len(b) < 8 {
		return badReqLen("meter_mod of %d bytes", len(b)+8)
	}
	cmd, flags, id := binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:])
	br := s.cfg.Bridge
	switch cmd {
	case uint16(ofwire.MeterDelete):
		br.DeleteMeter(id)
		return nil
	case uint16(ofwire.MeterAdd), uint16(ofwire.MeterModify):
	default:
		return ofErr(dataplane.ErrTypeMeterModFailed, 4, "meter_mod command %d", cmd) // OFPMMFC_BAD_COMMAND
	}
	if flags&ofwire.MeterFlagKbps == 0 {
		return ofErr(dataplane.ErrTypeMeterModFailed, 5, "the simulator's meters are in kbps") // OFPMMFC_BAD_FLAGS
	}
	bands := b[8:]
	if len(bands) != 16 || binary.BigEndian.Uint16(bands) != ofwire.MeterBandDrop || binary.BigEndian.Uint16(bands[2:]) != 16 {
		return ofErr(dataplane.ErrTypeMeterModFailed, dataplane.MeterModBadBand, "the simulator's meters have one drop band")
	}
	rate, burst := binary.BigEndian.Uint32(bands[4:]), binary.BigEndian.Uint32(bands[8:])
	if flags&ofwire.MeterFlagBurst == 0 {
		burst = 0
	}
	return br.SetMeter(id, flags, rate, burst, cmd == uint16(ofwire.MeterModify))
}

// meterConfigs writes a METER_CONFIG reply's entries.
func meterConfigs(w *multipartWriter, br *dataplane.Bridge, id uint32) {
	ms, _ := br.Meters()
	for _, m := range ms {
		if id != ofwire.MeterAll && m.ID != id {
			continue
		}
		e := binary.BigEndian.AppendUint16(nil, 24)
		e = binary.BigEndian.AppendUint16(e, m.Flags)
		e = binary.BigEndian.AppendUint32(e, m.ID)
		e = binary.BigEndian.AppendUint16(e, ofwire.MeterBandDrop)
		e = binary.BigEndian.AppendUint16(e, 16)
		e = binary.BigEndian.AppendUint32(e, m.Kbps)
		e = binary.BigEndian.AppendUint32(e, m.BurstKb)
		e = append(e, 0, 0, 0, 0)
		w.add(e)
	}
}

// meterStats writes a METER reply's entries: what came in, and one band's drops.
func meterStats(w *multipartWriter, br *dataplane.Bridge, id uint32, now time.Time) {
	ms, uses := br.Meters()
	for _, m := range ms {
		if id != ofwire.MeterAll && m.ID != id {
			continue
		}
		e := binary.BigEndian.AppendUint32(nil, m.ID)
		e = binary.BigEndian.AppendUint16(e, 56)
		e = append(e, 0, 0, 0, 0, 0, 0)
		e = binary.BigEndian.AppendUint32(e, uint32(uses[m.ID]))
		e = binary.BigEndian.AppendUint64(e, m.PacketsIn)
		e = binary.BigEndian.AppendUint64(e, m.BytesIn)
		d := max(now.Sub(m.Created), 0)
		e = binary.BigEndian.AppendUint32(e, uint32(d/time.Second))
		e = binary.BigEndian.AppendUint32(e, uint32(d%time.Second))
		e = binary.BigEndian.AppendUint64(e, m.Dropped)
		e = binary.BigEndian.AppendUint64(e, m.DroppedBytes)
		w.add(e)
	}
}
