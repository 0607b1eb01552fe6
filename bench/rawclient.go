package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
)

// rawClient is the physical limit of part 1: a minimal OpenFlow 1.3 controller with no state, no diff and no
// per-flow bookkeeping. It accepts the bridge's connection, answers the handshake, then writes every flow_mod
// (encoded before the clock starts) in one stream followed by one barrier, and waits for the barrier reply.
type rawClient struct {
	ln net.Listener
}

func listenRaw() (*rawClient, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("raw client listen: %w", err)
	}
	return &rawClient{ln: ln}, nil
}

func (r *rawClient) target() string { return "tcp:" + r.ln.Addr().String() }
func (r *rawClient) close()         { r.ln.Close() }

// encodeAdds encodes one ADD flow_mod per flow, xids from 1.
func encodeAdds(fl []flows.Flow) ([]byte, error) {
	buf := make([]byte, 0, len(fl)*128)
	var err error
	for i, f := range fl {
		if buf, err = ofwire.AppendFlowMod(buf, uint32(i+1), ofwire.FlowAdd, f); err != nil {
			return nil, fmt.Errorf("encode flow %d: %w", i, err)
		}
	}
	return buf, nil
}

// encodeBundle encodes the same ADD flow_mods as one atomic, ordered bundle (ONF extension on OpenFlow 1.3): an
// open, one bundle add per flow (xids from 1), and a commit; program's barrier follows the commit.
func encodeBundle(fl []flows.Flow) ([]byte, error) {
	const id, flags = 1, ofwire.BundleAtomic | ofwire.BundleOrdered
	n := len(fl)
	buf := ofwire.AppendBundleControl(make([]byte, 0, n*152+64), uint32(n+2), id, ofwire.BundleOpenRequest, flags)
	var err error
	for i, f := range fl {
		if buf, err = ofwire.AppendBundleFlowMod(buf, uint32(i+1), id, flags, ofwire.FlowAdd, f); err != nil {
			return nil, fmt.Errorf("encode flow %d: %w", i, err)
		}
	}
	return ofwire.AppendBundleControl(buf, uint32(n+3), id, ofwire.BundleCommitRequest, flags), nil
}

// program waits for the bridge to connect, completes the handshake, and then times the stream of encoded
// flow_mods and the barrier. It fails when the switch answers any flow_mod with an error.
func (r *rawClient) program(ctx context.Context, encoded []byte, n int) (time.Duration, error) {
	if d, ok := ctx.Deadline(); ok {
		if tl, ok := r.ln.(*net.TCPListener); ok {
			_ = tl.SetDeadline(d)
		}
	}
	c, err := r.ln.Accept()
	if err != nil {
		return 0, fmt.Errorf("raw client: waiting for the bridge: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	br := bufio.NewReaderSize(c, 64<<10)
	if _, err := c.Write(ofwire.AppendEmpty(ofwire.AppendHello(nil, 0), ofwire.TypeFeaturesRequest, 0)); err != nil {
		return 0, fmt.Errorf("raw client: hello: %w", err)
	}
	// Wait for the features reply; answer echo requests meanwhile.
	for {
		t, xid, body, err := readMsg(br)
		if err != nil {
			return 0, fmt.Errorf("raw client: handshake: %w", err)
		}
		if t == ofwire.TypeEchoRequest {
			_, _ = c.Write(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, xid, body))
		}
		if t == ofwire.TypeError {
			return 0, fmt.Errorf("raw client: handshake: switch sent an error %x", body)
		}
		if t == ofwire.TypeFeaturesReply {
			break
		}
	}
	barrierXid := uint32(n + 4) // after the flow_mods' xids and a bundle's open and commit
	done := make(chan error, 1)
	go func() {
		for {
			t, xid, body, err := readMsg(br)
			switch {
			case err != nil:
				done <- err
				return
			case t == ofwire.TypeError:
				e, _ := ofwire.DecodeError(body)
				done <- fmt.Errorf("switch refused message xid %d: %v", xid, e)
				return
			case t == ofwire.TypeExperimenter && xid == uint32(n+3):
				if e, err := ofwire.DecodeExperimenter(body); err == nil {
					if c, err := ofwire.DecodeBundleControl(e.Data); err == nil && c.Type != ofwire.BundleCommitReply {
						done <- fmt.Errorf("bundle commit answered with control type %d", c.Type)
						return
					}
				}
			case t == ofwire.TypeBarrierReply && xid == barrierXid:
				done <- nil
				return
			}
		}
	}()
	start := time.Now()
	w := bufio.NewWriterSize(c, 256<<10)
	if _, err := w.Write(encoded); err != nil {
		return 0, fmt.Errorf("raw client: flow_mods: %w", err)
	}
	if _, err := w.Write(ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, barrierXid)); err != nil {
		return 0, fmt.Errorf("raw client: barrier: %w", err)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("raw client: flush: %w", err)
	}
	if err := <-done; err != nil {
		return 0, fmt.Errorf("raw client: waiting for the barrier reply: %w", err)
	}
	return time.Since(start), nil
}

// readMsg reads one OpenFlow message: type, xid and body.
func readMsg(br *bufio.Reader) (ofwire.Type, uint32, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:4]))
	if n < 8 {
		return 0, 0, nil, errors.New("message shorter than its header")
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, 0, nil, err
	}
	return ofwire.Type(h[1]), binary.BigEndian.Uint32(h[4:8]), body, nil
}
