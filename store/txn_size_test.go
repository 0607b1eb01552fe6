package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"portmirror/model"
)

// TestTxnLookupRandom holds a transaction's index lookups against a filter of its full listing, over random
// puts (moving sessions between port mirrors), deletes and re-creations on top of committed sessions.
func TestTxnLookupRandom(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer func() { s.Close() }()
	rng := rand.New(rand.NewPCG(3, 4))
	pms := []string{"p0", "p1", "p2"}
	for round := range 20 {
		mustUpdate(t, s, func(tx *Txn) error {
			for range 40 {
				id := fmt.Sprint("s", rng.IntN(30))
				if rng.IntN(4) == 0 {
					tx.Delete(KindSession, id)
				} else {
					tx.Put(model.Session{UUID: id, PortMirrorUUID: pms[rng.IntN(len(pms))], SourceNicUUID: fmt.Sprint("n", rng.IntN(5))})
				}
				all := List[model.Session](tx)
				for _, pm := range pms {
					var want []string
					for _, ss := range all {
						if ss.PortMirrorUUID == pm {
							want = append(want, ss.UUID)
						}
					}
					if got := ids(Lookup[model.Session](tx, IdxPortMirror, pm)); !slices.Equal(got, want) {
						t.Fatalf("round %d: lookup %s = %v, listing says %v", round, pm, got, want)
					}
					if got := eachIDs(tx, IdxPortMirror, pm, -1); !slices.Equal(got, want) {
						t.Fatalf("round %d: each %s = %v, listing says %v", round, pm, got, want)
					}
					if stop := len(want) / 2; len(want) > 0 {
						if got := eachIDs(tx, IdxPortMirror, pm, stop); !slices.Equal(got, want[:stop+1]) {
							t.Fatalf("round %d: each %s stopped after %d = %v, want %v", round, pm, stop, got, want[:stop+1])
						}
					}
				}
			}
			return nil
		})
	}
	// The committed indexes agree with the listing too, as kept by the commits and as rebuilt by a load (whose
	// records arrive in key order, not in creation order).
	check := func(what string, s *Store) {
		t.Helper()
		all := List[model.Session](s)
		for _, idx := range []struct{ name, prefix string }{{IdxPortMirror, "p"}, {IdxSource, "n"}} {
			for i := range 5 {
				value := fmt.Sprint(idx.prefix, i)
				var want []string
				for _, ss := range all {
					if ss.PortMirrorUUID == value && idx.name == IdxPortMirror || ss.SourceNicUUID == value && idx.name == IdxSource {
						want = append(want, ss.UUID)
					}
				}
				if got := ids(Lookup[model.Session](s, idx.name, value)); !slices.Equal(got, want) {
					t.Errorf("%s: lookup %s=%s = %v, listing says %v", what, idx.name, value, got, want)
				}
				if got := eachIDs(s, idx.name, value, -1); !slices.Equal(got, want) {
					t.Errorf("%s: each %s=%s = %v, listing says %v", what, idx.name, value, got, want)
				}
				if n := LookupCount[model.Session](s, idx.name, value); n != len(want) {
					t.Errorf("%s: count %s=%s = %d, want %d", what, idx.name, value, n, len(want))
				}
			}
		}
	}
	check("committed", s)
	s.Close()
	s = openAt(t, dir)
	check("reopened", s)
}

// TestTxnTooLarge: a transaction larger than Badger takes is refused with *TooLargeError before anything is
// written, and so is (in memory, where Badger has no value log) a value over 1 MiB.
func TestTxnTooLarge(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		t.Run(fmt.Sprint("inMemory=", inMemory), func(t *testing.T) {
			dir := ""
			if !inMemory {
				dir = t.TempDir()
			}
			s, err := Open(context.Background(), Options{Dir: dir, InMemory: inMemory, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Update(context.Background(), func(tx *Txn) error {
				for i := range 60000 {
					tx.Put(model.Cluster{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: "c"})
				}
				tx.Audit(model.AuditEvent{Operation: "big"})
				return nil
			})
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Writes != 60001 || tl.Bytes < tl.MaxBytes {
				t.Fatalf("60,000 objects: got %v, want *TooLargeError", err)
			}
			if n := Count[model.Cluster](s); n != 0 {
				t.Fatalf("%d clusters after the refusal", n)
			}
			if evs, _ := s.Audits(context.Background(), AuditQuery{First: 10}); len(evs) != 0 {
				t.Fatalf("audit events after the refusal: %v", evs)
			}
			err = s.Update(context.Background(), func(tx *Txn) error {
				tx.Put(model.Cluster{UUID: "big", Name: strings.Repeat("x", 2<<20)})
				return nil
			})
			if inMemory {
				if !errors.As(err, &tl) || tl.Value < 2<<20 {
					t.Fatalf("a 2 MiB value in memory: got %v, want *TooLargeError", err)
				}
			} else if err != nil {
				t.Fatalf("a 2 MiB value on disk goes to the value log: %v", err)
			}
		})
	}
}

// eachIDs returns the ids Each hands out, stopping (fn false) at the one numbered stop (never when negative).
func eachIDs(r Reader, idx, value string, stop int) []string {
	var out []string
	Each(r, idx, value, func(s model.Session) bool {
		out = append(out, s.UUID)
		return len(out)-1 != stop
	})
	return out
}
