package ofsim

import (
	"encoding/binary"
	"errors"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// Bundles are the ONF extension EXT-230 on OpenFlow 1.3, as OVS implements it: per connection, a bundle is
// opened (or implicitly by its first add), collects flow_mods and group_mods that passed the checks a message can
// pass on its own, and its commit applies them in order in one dataplane transaction, all or none.

// bundle is one open bundle of a connection.
type bundle struct {
	flags  uint16
	closed bool
	msgs   []bundleMsg
}

// bundleMsg is one message added to a bundle.
type bundleMsg struct {
	xid uint32
	raw []byte // the bundle add message, which a commit-time error carries (serve allocates each message anew)
	// apply makes the change and returns the flows it deleted.
	apply func(target) ([]dataplane.Flow, error)
}

// bundleErr is an ONF experimenter error of the bundle extension.
func bundleErr(code uint16, format string, args ...any) *dataplane.OFError {
	return ofErr(ofwire.ErrTypeExperimenter, code, format, args...)
}

// appendOFError encodes a refusal: an experimenter error of the ONF for the bundle codes, an ordinary OpenFlow
// error otherwise. Like OVS, its data is the whole offending message, not just its first 64 bytes.
func appendOFError(dst []byte, xid uint32, oe *dataplane.OFError, data []byte) []byte {
	start := len(dst)
	dst = appendHeader(dst, ofwire.TypeError, xid)
	dst = binary.BigEndian.AppendUint16(dst, oe.Type)
	dst = binary.BigEndian.AppendUint16(dst, oe.Code)
	if oe.Type == ofwire.ErrTypeExperimenter {
		dst = binary.BigEndian.AppendUint32(dst, ofwire.ONFExperimenter)
	}
	if room := ofwire.MaxMessageLen - (len(dst) - start); len(data) > room {
		data = data[:room]
	}
	dst = append(dst, data...)
	return finish(dst, start)
}

// experimenter handles an OFPT_EXPERIMENTER message (header included).
func (s *Switch) experimenter(c *conn, xid uint32, msg []byte) error {
	exp, err := ofwire.DecodeExperimenter(msg[ofwire.HeaderLen:])
	if err != nil {
		return badReqLen("experimenter message of %d bytes", len(msg))
	}
	if exp.Experimenter != ofwire.ONFExperimenter {
		return ofErr(dataplane.ErrTypeBadRequest, ofwire.BadRequestBadExperimenter, "experimenter %#08x is not supported", exp.Experimenter)
	}
	switch exp.ExpType {
	case ofwire.ONFBundleControl:
		if err := s.refuseSlave(c); err != nil {
			return err
		}
		return s.bundleControl(c, xid, exp.Data)
	case ofwire.ONFBundleAdd:
		if err := s.refuseSlave(c); err != nil {
			return err
		}
		return s.bundleAdd(c, xid, msg, exp.Data)
	default:
		return ofErr(dataplane.ErrTypeBadRequest, ofwire.BadRequestBadExpType, "ONF experimenter type %d is not supported", exp.ExpType)
	}
}

func (s *Switch) bundleControl(c *conn, xid uint32, data []byte) error {
	bc, err := ofwire.DecodeBundleControl(data)
	if err != nil {
		return badReqLen("bundle control of %d bytes", len(data)+16)
	}
	// OVS's replies carry flags 0, whatever the request's.
	reply := func(typ uint16) { c.send(ofwire.AppendBundleControl(nil, xid, bc.BundleID, typ, 0)) }
	b := c.bundles[bc.BundleID]
	switch bc.Type {
	case ofwire.BundleOpenRequest:
		if b != nil {
			// OVS 3.1 discards the open bundle and answers BAD_ID (not BUNDLE_EXIST).
			delete(c.bundles, bc.BundleID)
			return bundleErr(ofwire.BundleErrBadID, "bundle %d is already open: discarded", bc.BundleID)
		}
		if c.bundles == nil {
			c.bundles = map[uint32]*bundle{}
		}
		c.bundles[bc.BundleID] = &bundle{flags: bc.Flags}
		reply(ofwire.BundleOpenReply)
	case ofwire.BundleCloseRequest:
		if b == nil {
			return bundleErr(ofwire.BundleErrBadID, "bundle %d is not open", bc.BundleID)
		}
		switch {
		case b.closed:
			delete(c.bundles, bc.BundleID)
			return bundleErr(ofwire.BundleErrClosed, "bundle %d is already closed", bc.BundleID)
		case b.flags != bc.Flags:
			delete(c.bundles, bc.BundleID)
			return bundleErr(ofwire.BundleErrBadFlags, "bundle %d: close with flags %#x, opened with %#x", bc.BundleID, bc.Flags, b.flags)
		}
		b.closed = true
		reply(ofwire.BundleCloseReply)
	case ofwire.BundleCommitRequest:
		if b == nil {
			return bundleErr(ofwire.BundleErrBadID, "bundle %d is not open", bc.BundleID)
		}
		delete(c.bundles, bc.BundleID) // gone after the commit, whatever its outcome
		if b.flags != bc.Flags {
			return bundleErr(ofwire.BundleErrBadFlags, "bundle %d: commit with flags %#x, opened with %#x", bc.BundleID, bc.Flags, b.flags)
		}
		if err := s.commit(c, b); err != nil {
			return err
		}
		reply(ofwire.BundleCommitReply)
	case ofwire.BundleDiscardRequest:
		if b == nil {
			return bundleErr(ofwire.BundleErrBadID, "bundle %d is not open", bc.BundleID)
		}
		delete(c.bundles, bc.BundleID)
		reply(ofwire.BundleDiscardReply)
	case ofwire.BundleOpenReply, ofwire.BundleCloseReply, ofwire.BundleCommitReply, ofwire.BundleDiscardReply:
		return bundleErr(ofwire.BundleErrBadType, "bundle control type %d is a reply", bc.Type)
	default:
		// OVS 3.1 answers a control type it does not know with a control message of type 0, doing nothing.
		reply(ofwire.BundleOpenRequest)
	}
	return nil
}

// commit applies a bundle's messages in order in one transaction. When one fails nothing is applied: the switch
// sends that message's error (its xid, the start of its bundle add as data) and the commit fails with
// BUNDLE_MSG_FAILED.
func (s *Switch) commit(c *conn, b *bundle) error {
	var failed *bundleMsg
	var removed []dataplane.Flow
	err := s.cfg.Bridge.Atomically(func(tx *dataplane.Tx) error {
		for i := range b.msgs {
			r, err := b.msgs[i].apply(tx)
			if err != nil {
				failed = &b.msgs[i]
				return err
			}
			removed = append(removed, r...)
		}
		return nil
	})
	if err == nil {
		s.flowRemoved(removed)
		return nil
	}
	var oe *dataplane.OFError
	if !errors.As(err, &oe) {
		oe = ofErr(dataplane.ErrTypeFlowModFailed, dataplane.FlowModUnknown, "%v", err)
	}
	s.log.Debug("bundle commit failed", "xid", failed.xid, "err", oe)
	c.send(appendOFError(nil, failed.xid, oe, failed.raw))
	return bundleErr(ofwire.BundleErrMsgFailed, "bundle commit failed: message xid %d: %v", failed.xid, oe.Reason)
}

// bundleAdd checks a bundle add message and the message it carries and, when both pass, adds it to its bundle
// (opening the bundle if need be, as OVS does). A message refused on its own merits leaves the bundle as it was;
// an add to a closed bundle, or with other flags than the bundle's, discards the bundle, as in OVS.
func (s *Switch) bundleAdd(c *conn, xid uint32, msg, data []byte) error {
	if len(data) < 8+ofwire.HeaderLen {
		return badReqLen("bundle add of %d bytes", len(msg))
	}
	ba, err := ofwire.DecodeBundleAdd(data)
	if err != nil {
		return bundleErr(ofwire.BundleErrMsgBadLen, "bundle add: %v", err)
	}
	inner := ba.Inner
	if ix := binary.BigEndian.Uint32(inner[4:]); ix != xid {
		return bundleErr(ofwire.BundleErrMsgBadXid, "bundle add: the inner message has xid %d, the bundle add %d", ix, xid)
	}
	var apply func(target) ([]dataplane.Flow, error)
	switch typ := ofwire.Type(inner[1]); typ {
	case ofwire.TypeFlowMod:
		fm, err := parseFlowMod(inner[ofwire.HeaderLen:])
		if err != nil {
			return err
		}
		if err := fm.check(s.cfg.Bridge); err != nil {
			return err
		}
		apply = fm.apply
	case ofwire.TypeGroupMod:
		gm, err := parseGroupMod(inner[ofwire.HeaderLen:])
		if err != nil {
			return err
		}
		apply = gm.apply
	default:
		return bundleErr(ofwire.BundleErrMsgUnsup, "bundle add: a %v cannot go in a bundle here (flow_mod and group_mod can)", typ)
	}
	b := c.bundles[ba.BundleID]
	switch {
	case b == nil:
		if c.bundles == nil {
			c.bundles = map[uint32]*bundle{}
		}
		b = &bundle{flags: ba.Flags}
		c.bundles[ba.BundleID] = b
	case b.closed:
		delete(c.bundles, ba.BundleID) // as OVS: the refused add discards the bundle
		return bundleErr(ofwire.BundleErrClosed, "bundle %d is closed: discarded", ba.BundleID)
	case b.flags != ba.Flags:
		delete(c.bundles, ba.BundleID)
		return bundleErr(ofwire.BundleErrBadFlags, "bundle %d: add with flags %#x, opened with %#x: discarded", ba.BundleID, ba.Flags, b.flags)
	}
	b.msgs = append(b.msgs, bundleMsg{xid: xid, raw: msg, apply: apply})
	return nil
}
