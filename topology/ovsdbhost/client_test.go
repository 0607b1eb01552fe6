package ovsdbhost

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-openvswitch/ovsdb"
)

func TestSplitterAtEveryBoundary(t *testing.T) {
	msgs := []string{
		`{"id":"1","result":[{"rows":[{"name":"a}b{c","x":["set",[]]}]}],"error":null}`,
		`{"id":null,"method":"echo","params":["q\"}]"]}`,
		`{"id":"2","result":[{"details":"back\\slash \\\" quote","error":"e"}],"error":null}`,
	}
	stream := strings.Join(msgs, "\n") + "\n"
	for cut := range len(stream) {
		var s splitter
		var got []string
		emit := func(m []byte) { got = append(got, string(m)) }
		s.feed([]byte(stream[:cut]), emit)
		s.feed([]byte(stream[cut:]), emit)
		if strings.Join(got, "\n") != strings.Join(msgs, "\n") {
			t.Fatalf("cut at %d: got %q", cut, got)
		}
		for _, m := range got {
			if !json.Valid([]byte(m)) {
				t.Fatalf("cut at %d: invalid %q", cut, m)
			}
		}
	}
}

// TestConnectionLostMidMessage: a server that dies in the middle of a reply must not leave the go-openvswitch
// reader spinning: the pending transact fails promptly and close returns.
func TestConnectionLostMidMessage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		conn.Read(buf) // the transact request
		conn.Write([]byte(`{"id":"1","result":[{"rows":[{"name":"trunc`))
		conn.Close()
	}()
	c, err := dial(t.Context(), "tcp:"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.transact(t.Context(), []ovsdb.TransactOp{opSelect{Table: "Bridge"}}, []string{"read"})
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("transact = %v, want connection lost", err)
	}
	done := make(chan struct{})
	go func() { c.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close hangs after the connection died mid-message")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}
