package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"portmirror/model"
)

func recv(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("feed closed")
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no change within 5s")
	}
	return Change{}
}

func TestFeedDeliversCommittedChanges(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	ch, cancel := s.Subscribe(16)
	defer cancel()
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Put(model.Cluster{UUID: "c1"})
		tx.Put(model.FlowEndpoint{FlowNetworkUUID: "f", HostUUID: "h"})
		return nil
	})
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Delete(KindCluster, "c1")
		tx.Delete(KindCluster, "missing") // nothing to delete, no change
		return nil
	})
	want := []Change{{Kind: KindCluster, UUID: "c1"}, {Kind: KindFlowEndpoint, UUID: "f/h"}, {Kind: KindCluster, UUID: "c1", Deleted: true}}
	for _, w := range want {
		if c := recv(t, ch); c != w {
			t.Fatalf("got %+v want %+v", c, w)
		}
	}
	select {
	case c := <-ch:
		t.Fatalf("unexpected change %+v", c)
	default:
	}
}

func TestFeedOverflowDeliversAll(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	ch, cancel := s.Subscribe(2)
	defer cancel()
	other, cancelOther := s.Subscribe(100)
	defer cancelOther()
	// Five writes into a buffer of two: the writer must not block.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5 {
			mustUpdate(t, s, func(tx *Txn) error {
				tx.Put(model.Cluster{UUID: fmt.Sprint("c", i)})
				return nil
			})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer blocked by a slow subscriber")
	}
	// What arrives is a prefix of the changes in order, then one KindAll, then nothing more.
	for i := 0; ; i++ {
		c := recv(t, ch)
		if c.Kind == KindAll {
			if i >= 5 {
				t.Fatalf("KindAll after all five changes arrived")
			}
			break
		}
		if c.UUID != fmt.Sprint("c", i) {
			t.Fatalf("change %d = %+v", i, c)
		}
	}
	select {
	case c := <-ch:
		t.Fatalf("unexpected change after KindAll: %+v", c)
	case <-time.After(50 * time.Millisecond):
	}
	// The subscriber is back to normal afterwards.
	mustUpdate(t, s, func(tx *Txn) error { tx.Put(model.Cluster{UUID: "c9"}); return nil })
	if c := recv(t, ch); c.UUID != "c9" {
		t.Fatalf("after recovery got %+v", c)
	}
	// The other subscriber lost nothing.
	for i := range 5 {
		if c := recv(t, other); c.UUID != fmt.Sprint("c", i) {
			t.Fatalf("other subscriber change %d = %+v", i, c)
		}
	}
}

func TestFeedCancelAndClose(t *testing.T) {
	s := openAt(t, t.TempDir())
	ch, cancel := s.Subscribe(1)
	cancel()
	cancel() // twice is fine
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	ch2, cancel2 := s.Subscribe(1)
	mustUpdate(t, s, func(tx *Txn) error { tx.Put(model.Cluster{UUID: "a"}); tx.Put(model.Cluster{UUID: "b"}); return nil })
	s.Close()
	for range ch2 { // drains and ends: Close closed it
	}
	cancel2()
	if _, err := s.Audits(context.Background(), AuditQuery{First: 1}); err == nil {
		t.Log("audits after close answered") // Badger's behaviour; not asserted
	}
}
