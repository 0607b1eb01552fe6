package store

import (
	"context"
	"fmt"
	"testing"

	"portmirror/model"
)

// BenchmarkLookupSessions reads the sessions of one port mirror of 1,000 (of 100 port mirrors, created
// interleaved, as a fleet's sessions are): whole, counted, and the first ten.
func BenchmarkLookupSessions(b *testing.B) {
	s, err := Open(context.Background(), Options{InMemory: true, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var objs []any
	for i := range 1000 {
		for p := range 100 {
			objs = append(objs, model.Session{UUID: fmt.Sprintf("s-%03d-%04d", p, i), Name: fmt.Sprint("s", i), PortMirrorUUID: fmt.Sprint("pm-", p)})
		}
	}
	if err := s.BulkPut(context.Background(), objs); err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			if n := len(Lookup[model.Session](s, IdxPortMirror, "pm-7")); n != 1000 {
				b.Fatal(n)
			}
		}
	})
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			if n := LookupCount[model.Session](s, IdxPortMirror, "pm-7"); n != 1000 {
				b.Fatal(n)
			}
		}
	})
	b.Run("first10", func(b *testing.B) {
		for b.Loop() {
			if p, _ := LookupPage[model.Session](s, IdxPortMirror, "pm-7", "", 10); len(p) != 10 {
				b.Fatal(len(p))
			}
		}
	})
}
