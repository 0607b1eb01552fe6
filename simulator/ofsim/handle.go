package ofsim

import (
	"encoding/binary"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// flagCheckOverlap is OFPFF_CHECK_OVERLAP.
const flagCheckOverlap = 2

// Multipart types the simulator answers besides ofwire's MultipartFlow and MultipartPortDesc.
const (
	mpDesc      = 0
	mpAggregate = 2
	mpGroupDesc = 7
)

// handle processes one message (header included). A returned *dataplane.OFError is sent back as an OpenFlow
// error; any other error ends the connection.
func (s *Switch) handle(c *conn, typ ofwire.Type, xid uint32, msg []byte) error {
	body := msg[ofwire.HeaderLen:]
	switch typ {
	case ofwire.TypeHello, ofwire.TypeEchoReply, ofwire.TypeSetConfig, ofwire.TypeSetAsync:
	case ofwire.TypeError:
		if e, err := ofwire.DecodeError(body); err == nil {
			s.log.Info("controller sent an error", "type", e.Type, "code", e.Code)
		}
	case ofwire.TypeEchoRequest:
		c.send(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, xid, body))
	case ofwire.TypeFeaturesRequest:
		b := appendHeader(nil, ofwire.TypeFeaturesReply, xid)
		b = binary.BigEndian.AppendUint64(b, s.cfg.DatapathID)
		b = binary.BigEndian.AppendUint32(b, 0)    // n_buffers
		b = append(b, 254, 0, 0, 0)                // n_tables, auxiliary_id, pad
		b = binary.BigEndian.AppendUint32(b, 0x4f) // capabilities, as OVS
		b = binary.BigEndian.AppendUint32(b, 0)    // reserved
		c.send(finish(b, 0))
	case ofwire.TypeGetConfigRequest:
		b := appendHeader(nil, ofwire.TypeGetConfigReply, xid)
		b = append(b, 0, 0, 0, 128) // flags, miss_send_len (OVS default 128)
		c.send(finish(b, 0))
	case ofwire.TypeBarrierRequest:
		c.send(ofwire.AppendEmpty(nil, ofwire.TypeBarrierReply, xid))
	case ofwire.TypeRoleRequest:
		return s.roleRequest(c, xid, body)
	case ofwire.TypeGetAsyncRequest:
		b := appendHeader(nil, ofwire.TypeGetAsyncReply, xid)
		// OVS's defaults (packet-in, port status, flow removed; each for MASTER/EQUAL, then SLAVE).
		for _, v := range []uint32{0x3, 0x0, 0x7, 0x7, 0xf, 0x0} {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		c.send(finish(b, 0))
	case ofwire.TypeFlowMod, ofwire.TypeGroupMod, ofwire.TypePortMod, ofwire.TypePacketOut, ofwire.TypeTableMod, ofwire.TypeMeterMod:
		if err := s.refuseSlave(c); err != nil {
			return err
		}
		switch typ {
		case ofwire.TypeFlowMod:
			return s.flowMod(body)
		case ofwire.TypeGroupMod:
			return s.groupMod(body)
		case ofwire.TypePortMod:
			return s.portMod(body)
		case ofwire.TypePacketOut:
			return s.packetOut(body)
		case ofwire.TypeMeterMod:
			return s.meterMod(body)
		}
		return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadType, "message type %v is not supported", typ)
	case ofwire.TypeMultipartRequest:
		return s.multipart(c, xid, body)
	case ofwire.TypeExperimenter:
		if s.cfg.NoBundles {
			return ofErr(dataplane.ErrTypeBadRequest, ofwire.BadRequestBadExperimenter, "experimenter messages are not supported")
		}
		return s.experimenter(c, xid, msg)
	default:
		return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadType, "message type %v is not supported", typ)
	}
	return nil
}

// flowMod is a decoded flow_mod: what it changes, ready to apply to the bridge or, in a bundle, to a transaction.
type flowMod struct {
	cmd          ofwire.FlowModCommand
	flow         dataplane.Flow
	filter       dataplane.FlowFilter
	checkOverlap bool
}

// parseFlowMod decodes a flow_mod's body (after the header) and makes the checks that need nothing but the
// message.
func parseFlowMod(b []byte) (flowMod, error) {
	if len(b) < 48 {
		return flowMod{}, badReqLen("flow_mod of %d bytes", len(b)+8)
	}
	f := dataplane.Flow{
		Cookie:      binary.BigEndian.Uint64(b[0:]),
		Table:       b[16],
		IdleTimeout: binary.BigEndian.Uint16(b[18:]),
		HardTimeout: binary.BigEndian.Uint16(b[20:]),
		Priority:    binary.BigEndian.Uint16(b[22:]),
		Flags:       binary.BigEndian.Uint16(b[36:]),
	}
	cookieMask := binary.BigEndian.Uint64(b[8:])
	cmd := ofwire.FlowModCommand(b[17])
	outPort, outGroup := binary.BigEndian.Uint32(b[28:]), binary.BigEndian.Uint32(b[32:])
	m, rest, err := decodeMatch(b[40:])
	if err != nil {
		return flowMod{}, err
	}
	f.Match = m
	if cmd != ofwire.FlowDelete && cmd != ofwire.FlowDeleteStrict {
		if err := decodeInstructions(rest, &f); err != nil {
			return flowMod{}, err
		}
	}
	fm := flowMod{cmd: cmd, flow: f, checkOverlap: f.Flags&flagCheckOverlap != 0,
		filter: dataplane.FlowFilter{Table: f.Table, Match: m, Priority: f.Priority, Cookie: f.Cookie, CookieMask: cookieMask, OutPort: outPort, OutGroup: outGroup}}
	switch cmd {
	case ofwire.FlowAdd:
		if f.Table == ofwire.TableAll {
			return flowMod{}, ofErr(dataplane.ErrTypeFlowModFailed, dataplane.FlowModBadTableID, "flow_mod ADD to table 255 (all tables)")
		}
	case ofwire.FlowModify, ofwire.FlowModifyStrict:
		fm.filter.Strict = cmd == ofwire.FlowModifyStrict
	case ofwire.FlowDelete, ofwire.FlowDeleteStrict:
		fm.filter.Strict = cmd == ofwire.FlowDeleteStrict
	default:
		return flowMod{}, ofErr(dataplane.ErrTypeFlowModFailed, dataplane.FlowModBadCommand, "flow_mod command %d is not known", cmd)
	}
	return fm, nil
}

// check makes the checks that need the bridge but not its flow tables (the table exists, the actions are valid,
// the groups they use exist): a bundle makes them when the flow_mod is added to it.
func (fm *flowMod) check(br *dataplane.Bridge) error {
	if fm.filter.Table != ofwire.TableAll && fm.filter.Table >= dataplane.NumTables {
		return ofErr(dataplane.ErrTypeFlowModFailed, dataplane.FlowModBadTableID, "table %d does not exist", fm.filter.Table)
	}
	switch fm.cmd {
	case ofwire.FlowAdd, ofwire.FlowModify, ofwire.FlowModifyStrict:
		probe := fm.flow
		if probe.Table == ofwire.TableAll {
			probe.Table = 0
		}
		return br.CheckFlow(probe)
	}
	return nil
}

// target is what flow and group changes apply to: the bridge itself, or a transaction on it (a bundle's commit).
type target interface {
	AddFlow(f dataplane.Flow, checkOverlap bool) error
	ModifyFlows(ff dataplane.FlowFilter, f dataplane.Flow) (int, error)
	DeleteFlows(ff dataplane.FlowFilter) ([]dataplane.Flow, error)
	ModGroup(cmd uint16, g dataplane.Group) error
}

var (
	_ target = (*dataplane.Bridge)(nil)
	_ target = (*dataplane.Tx)(nil)
)

// apply makes the change and returns the flows it deleted.
func (fm *flowMod) apply(t target) ([]dataplane.Flow, error) {
	switch fm.cmd {
	case ofwire.FlowAdd:
		return nil, t.AddFlow(fm.flow, fm.checkOverlap)
	case ofwire.FlowModify, ofwire.FlowModifyStrict:
		_, err := t.ModifyFlows(fm.filter, fm.flow)
		return nil, err
	default:
		return t.DeleteFlows(fm.filter)
	}
}

func (s *Switch) flowMod(b []byte) error {
	fm, err := parseFlowMod(b)
	if err != nil {
		return err
	}
	removed, err := fm.apply(s.cfg.Bridge)
	s.flowRemoved(removed)
	return err
}

// groupMod is a decoded group_mod.
type groupMod struct {
	cmd   uint16
	group dataplane.Group
}

func parseGroupMod(b []byte) (groupMod, error) {
	if len(b) < 8 {
		return groupMod{}, badReqLen("group_mod of %d bytes", len(b)+8)
	}
	cmd, g := binary.BigEndian.Uint16(b), dataplane.Group{Type: b[2], ID: binary.BigEndian.Uint32(b[4:])}
	bk := b[8:]
	for len(bk) > 0 {
		if len(bk) < 16 {
			return groupMod{}, ofErr(dataplane.ErrTypeGroupModFailed, 12, "bucket header truncated") // OFPGMFC_BAD_BUCKET
		}
		l := int(binary.BigEndian.Uint16(bk))
		if l < 16 || l > len(bk) {
			return groupMod{}, ofErr(dataplane.ErrTypeGroupModFailed, 12, "bucket of length %d", l)
		}
		acts, err := decodeActions(bk[16:l])
		if err != nil {
			return groupMod{}, err
		}
		g.Buckets = append(g.Buckets, acts)
		bk = bk[l:]
	}
	return groupMod{cmd: cmd, group: g}, nil
}

func (gm *groupMod) apply(t target) ([]dataplane.Flow, error) {
	return nil, t.ModGroup(gm.cmd, gm.group)
}

func (s *Switch) groupMod(b []byte) error {
	gm, err := parseGroupMod(b)
	if err != nil {
		return err
	}
	_, err = gm.apply(s.cfg.Bridge)
	return err
}

func (s *Switch) portMod(b []byte) error {
	if len(b) < 32 {
		return badReqLen("port_mod of %d bytes", len(b)+8)
	}
	no := binary.BigEndian.Uint32(b)
	config, mask := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
	p, ok := s.cfg.Bridge.Port(no)
	if !ok {
		return ofErr(7, 0, "port_mod of port %s: no such port", dataplane.PortString(no)) // OFPET_PORT_MOD_FAILED/BAD_PORT
	}
	if mask&1 != 0 { // OFPPC_PORT_DOWN
		return s.SetPortUp(p.No, config&1 == 0)
	}
	return nil
}

func (s *Switch) packetOut(b []byte) error {
	if len(b) < 16 {
		return badReqLen("packet_out of %d bytes", len(b)+8)
	}
	inPort, alen := binary.BigEndian.Uint32(b[4:]), int(binary.BigEndian.Uint16(b[8:]))
	if 16+alen > len(b) {
		return badReqLen("packet_out actions of %d bytes overrun the message", alen)
	}
	acts, err := decodeActions(b[16 : 16+alen])
	if err != nil {
		return err
	}
	fr, err := dataplane.ParseFrame(b[16+alen:])
	if err != nil {
		return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadLen, "packet_out data: %v", err)
	}
	fr.InPort = inPort
	res, err := s.cfg.Bridge.Execute(fr, acts)
	if err != nil {
		return err
	}
	if s.cfg.OnPacketOut != nil {
		s.cfg.OnPacketOut(res)
	}
	return nil
}

// multipartWriter splits a reply over messages of at most 65535 bytes, flagging all but the last with
// OFPMPF_REPLY_MORE.
type multipartWriter struct {
	c     *conn
	xid   uint32
	typ   uint16
	cur   []byte
	limit int
	bufs  *Buffers
}

func (w *multipartWriter) start() {
	if w.cur == nil && w.typ == ofwire.MultipartFlow {
		if w.bufs != nil && w.limit <= replyBuf {
			w.cur = w.bufs.get() // a whole part's room, reused by the switches that share the pool
		} else {
			w.cur = make([]byte, 0, min(w.limit, 32<<10)) // a bridge's flows: grown by doubling from here, not from a few bytes
		}
	}
	w.cur = appendHeader(w.cur[:0], ofwire.TypeMultipartReply, w.xid)
	w.cur = binary.BigEndian.AppendUint16(w.cur, w.typ)
	w.cur = append(w.cur, 0, 0, 0, 0, 0, 0)
}

func (w *multipartWriter) add(entry []byte) {
	if w.cur == nil {
		w.start()
	}
	if len(w.cur)+len(entry) > w.limit && len(w.cur) > 16 {
		binary.BigEndian.PutUint16(w.cur[10:], ofwire.MultipartReplyMore)
		w.c.sendOwned(finish(w.cur, 0))
		w.cur = nil
		w.start()
	}
	w.cur = append(w.cur, entry...)
}

func (w *multipartWriter) done() {
	if w.cur == nil {
		w.start()
	}
	w.c.sendOwned(finish(w.cur, 0))
	w.cur = nil
}

func (s *Switch) multipart(c *conn, xid uint32, b []byte) error {
	if len(b) < 8 {
		return badReqLen("multipart request of %d bytes", len(b)+8)
	}
	typ := binary.BigEndian.Uint16(b)
	body := b[8:]
	w := &multipartWriter{c: c, xid: xid, typ: typ, limit: ofwire.MaxMessageLen, bufs: s.cfg.Buffers}
	br := s.cfg.Bridge
	switch typ {
	case mpDesc:
		e := make([]byte, 256*4+32)
		copy(e[0:], "Nicira, Inc.")
		copy(e[256:], "Open vSwitch")
		copy(e[512:], "3.1.0 (portmirror simulator)")
		copy(e[768:], "None")
		copy(e[800:], br.Name())
		w.add(e)
	case ofwire.MultipartPortDesc:
		for _, p := range br.Ports() {
			w.add(appendPort(nil, p))
		}
	case ofwire.MultipartFlow, mpAggregate:
		if len(body) < 32 {
			return badReqLen("flow stats request body of %d bytes", len(body))
		}
		ff := dataplane.FlowFilter{Table: body[0], OutPort: binary.BigEndian.Uint32(body[4:]), OutGroup: binary.BigEndian.Uint32(body[8:]),
			Cookie: binary.BigEndian.Uint64(body[16:]), CookieMask: binary.BigEndian.Uint64(body[24:])}
		if ff.Table != ofwire.TableAll && ff.Table >= dataplane.NumTables {
			return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadTableID, "table %d does not exist", ff.Table)
		}
		m, _, err := decodeMatch(body[32:])
		if err != nil {
			return err
		}
		ff.Match = m
		if typ == mpAggregate {
			var pk, by uint64
			n := 0
			br.EachFlow(ff, func(f *dataplane.Flow) { pk, by, n = pk+f.Packets, by+f.Bytes, n+1 })
			e := binary.BigEndian.AppendUint64(nil, pk)
			e = binary.BigEndian.AppendUint64(e, by)
			e = binary.BigEndian.AppendUint32(e, uint32(n))
			w.add(append(e, 0, 0, 0, 0))
			break
		}
		// Encoded as they are visited, not copied first: a reconnect storm reads back every bridge at once.
		now := time.Now()
		var e []byte
		br.EachFlow(ff, func(f *dataplane.Flow) {
			e = appendFlowStats(e[:0], f, now)
			w.add(e)
		})
	case mpGroupDesc:
		for _, g := range br.Groups() {
			e := []byte{0, 0, g.Type, 0}
			e = binary.BigEndian.AppendUint32(e, g.ID)
			for _, bk := range g.Buckets {
				start := len(e)
				e = append(e, 0, 0, 0, 0)
				e = binary.BigEndian.AppendUint32(e, ofwire.PortAny)
				e = binary.BigEndian.AppendUint32(e, ofwire.GroupAny)
				e = append(e, 0, 0, 0, 0)
				e = appendActions(e, bk)
				binary.BigEndian.PutUint16(e[start:], uint16(len(e)-start))
			}
			binary.BigEndian.PutUint16(e, uint16(len(e)))
			w.add(e)
		}
	case ofwire.MultipartMeterConfig, ofwire.MultipartMeter:
		if len(body) < 8 {
			return badReqLen("meter request body of %d bytes", len(body))
		}
		if id := binary.BigEndian.Uint32(body); typ == ofwire.MultipartMeter {
			meterStats(w, br, id, time.Now())
		} else {
			meterConfigs(w, br, id)
		}
	default:
		return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadMultipart, "multipart type %d is not supported by the simulator", typ)
	}
	w.done()
	return nil
}

func appendFlowStats(e []byte, f *dataplane.Flow, now time.Time) []byte {
	d := now.Sub(f.Installed)
	if d < 0 {
		d = 0
	}
	e = append(e, 0, 0, f.Table, 0)
	e = binary.BigEndian.AppendUint32(e, uint32(d/time.Second))
	e = binary.BigEndian.AppendUint32(e, uint32(d%time.Second))
	e = binary.BigEndian.AppendUint16(e, f.Priority)
	e = binary.BigEndian.AppendUint16(e, f.IdleTimeout)
	e = binary.BigEndian.AppendUint16(e, f.HardTimeout)
	e = binary.BigEndian.AppendUint16(e, f.Flags)
	e = append(e, 0, 0, 0, 0)
	e = binary.BigEndian.AppendUint64(e, f.Cookie)
	e = binary.BigEndian.AppendUint64(e, f.Packets)
	e = binary.BigEndian.AppendUint64(e, f.Bytes)
	e = appendMatch(e, f.Match)
	e = appendInstructions(e, f)
	binary.BigEndian.PutUint16(e, uint16(len(e)))
	return e
}
