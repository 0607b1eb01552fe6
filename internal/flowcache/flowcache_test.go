package flowcache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "controller")
	prog := Program{1, 2, 3}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]Entry{}
	for i := range 1000 {
		want[fmt.Sprintf("%016x", rng.Uint64())] = Entry{Key: rng.Uint64(), Flows: rng.Uint64(), Count: i}
	}
	if got, err := Load(dir, prog); err != nil || len(got) != 0 {
		t.Fatalf("Load of a directory that does not exist = %v, %v; want no entries, no error", got, err)
	}
	if err := Save(dir, prog, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, prog)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %d entries, differing from the %d saved", len(got), len(want))
	}
	// Saving again replaces, leaving no temporary file behind.
	if err := Save(dir, prog, map[string]Entry{"a": {Key: 1, Flows: 2, Count: 3}}); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir, prog); err != nil || !reflect.DeepEqual(got, map[string]Entry{"a": {Key: 1, Flows: 2, Count: 3}}) {
		t.Fatalf("after a second save: %v, %v", got, err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 || names[0].Name() != FileName {
		t.Fatalf("the directory holds %v, want only %s", names, FileName)
	}
}

func TestLoadRefuses(t *testing.T) {
	prog := Program{7}
	good := encode(prog, map[string]Entry{"0000000000000001": {Key: 1, Flows: 2, Count: 3}, "dp2": {Key: 4, Flows: 5, Count: 6}})
	cases := []struct {
		name  string
		bytes func() []byte
		other bool // ErrOtherProgram
	}{
		{"another program", func() []byte { return good }, true},
		{"a flipped bit", func() []byte { b := append([]byte(nil), good...); b[len(b)/2] ^= 4; return b }, false},
		{"truncated", func() []byte { return good[:len(good)-3] }, false},
		{"empty", func() []byte { return nil }, false},
		{"another format", func() []byte { b := append([]byte(nil), good...); b[7] = 9; return b }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), c.bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			p := prog
			if c.other {
				p = Program{8}
			}
			got, err := Load(dir, p)
			if err == nil || got != nil {
				t.Fatalf("Load = %v, %v; want an error and no entries", got, err)
			}
			if errors.Is(err, ErrOtherProgram) != c.other {
				t.Fatalf("Load: %v; ErrOtherProgram expected %v", err, c.other)
			}
		})
	}
}

func TestSelfIsStable(t *testing.T) {
	a, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == (Program{}) {
		t.Fatalf("Self twice: %x, %x", a, b)
	}
}

func TestDigestIsFixed(t *testing.T) {
	// The digest is recorded by one run and compared by the next: it must not depend on the process.
	if got, want := Digest([]byte("123456789")), uint64(0xe3069283cbf43926); got != want {
		t.Fatalf("Digest(123456789) = %#x, want the CRC-32C and CRC-32 check values %#x", got, want)
	}
}

// TestEntryDigestsSum: a set of entries digests the same in any order, and differently with one entry changed by
// a bit, dropped, or doubled.
func TestEntryDigestsSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	entries := make([][]byte, 50)
	for i := range entries {
		entries[i] = make([]byte, 40+rng.IntN(80))
		for j := range entries[i] {
			entries[i][j] = byte(rng.Uint32())
		}
	}
	sum := func(es [][]byte) uint64 {
		var s uint64
		for _, e := range es {
			s += EntryDigest(e)
		}
		return s
	}
	want := sum(entries)
	for range 20 {
		shuffled := slices.Clone(entries)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if sum(shuffled) != want {
			t.Fatal("the digest of the same entries in another order differs")
		}
	}
	for i := range entries {
		flipped := slices.Clone(entries)
		flipped[i] = slices.Clone(entries[i])
		flipped[i][rng.IntN(len(flipped[i]))] ^= 1 << rng.IntN(8)
		if sum(flipped) == want {
			t.Fatalf("entry %d with one bit flipped: the same digest", i)
		}
		if sum(slices.Delete(slices.Clone(entries), i, i+1)) == want {
			t.Fatalf("entry %d dropped: the same digest", i)
		}
		if sum(append(slices.Clone(entries), entries[i])) == want {
			t.Fatalf("entry %d doubled: the same digest", i)
		}
	}
}
