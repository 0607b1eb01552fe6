// Package flowcache keeps what a controller compiled for each bridge across its restarts: the digest of the inputs
// the bridge's flows were compiled from, and the digest and count of the flows they compiled to, under the
// identity of the program that compiled them. A restarted controller (the same program) whose inputs for a bridge
// digest as recorded, and whose switch holds flows of the recorded digest, need not compile that bridge: the switch
// holds exactly what it would compile. The record is a hint that the switch's read-back confirms; a stale,
// missing or foreign record only means compiling.
package flowcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
)

// Entry is what was compiled for one bridge.
type Entry struct {
	Key   uint64 // Digest of everything the bridge's flows were compiled from
	Flows uint64 // Digest of the flows, packed (ofwire.PackFlows)
	Count int    // how many flows
}

// Program identifies the program that compiles: two programs of one identity compile equal inputs to equal flows.
type Program [sha256.Size]byte

// FileName is the file Save writes in its directory.
const FileName = "compiled-flows.cache"

// magic starts the file; its last byte is the format's version.
var magic = [8]byte{'p', 'm', 'f', 'c', 'a', 'c', 'h', 2}

// Digest is the 64-bit digest the cache records: the same on every run of every program, the CRC-32C of b then its
// CRC-32 (IEEE), both computed by the processor's own instructions where it has them (crc64's tables cost a small
// input more than its bytes: a bridge's flows are digested one entry at a time).
func Digest(b []byte) uint64 {
	return uint64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))<<32 | uint64(crc32.ChecksumIEEE(b))
}

// EntryDigest is the digest of one flow (its flow-stats entry in canonical form) in the digest of a bridge's
// flows, which is the sum of its flows' EntryDigest: independent of their order, so that a switch's reply is
// digested as it arrives, entry by entry, without being kept or sorted. The CRC is mixed (the SplitMix64
// finalizer) so that the sum of several is not linear in their bytes.
func EntryDigest(entry []byte) uint64 {
	x := Digest(entry)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Self is the identity of the running program: the SHA-256 of its executable (as it was started, even if the file
// was replaced since, where the system allows reading that).
func Self() (Program, error) {
	path := "/proc/self/exe"
	if runtime.GOOS != "linux" {
		var err error
		if path, err = os.Executable(); err != nil {
			return Program{}, fmt.Errorf("flowcache: the program's identity: %w", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return Program{}, fmt.Errorf("flowcache: the program's identity: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Program{}, fmt.Errorf("flowcache: the program's identity: read %s: %w", path, err)
	}
	var p Program
	h.Sum(p[:0])
	return p, nil
}

// ErrOtherProgram is Load's error for a file another program wrote.
var ErrOtherProgram = errors.New("flowcache: recorded by another program")

// Load reads the entries dir holds for program. No file is no entries and no error; a file of another program
// (ErrOtherProgram) or one that is damaged is an error and no entries.
func Load(dir string, program Program) (map[string]Entry, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flowcache: %w", err)
	}
	return decode(b, program)
}

// Save replaces the file in dir (created if need be) with entries, by datapath id, for program. The file is written
// aside and renamed: a crash leaves the old file or the new one, never a part.
func Save(dir string, program Program, entries map[string]Entry) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("flowcache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return fmt.Errorf("flowcache: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(encode(program, entries)); err != nil {
		tmp.Close()
		return fmt.Errorf("flowcache: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("flowcache: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("flowcache: %w", err)
	}
	return nil
}

// encode lays out: magic, program, the entries' count (u32), each entry (datapath id's length u16 and bytes, key
// u64, flows u64, count u32) in datapath order, then the Digest of everything before it. Big-endian.
func encode(program Program, entries map[string]Entry) []byte {
	b := make([]byte, 0, len(magic)+len(program)+4+len(entries)*48+8)
	b = append(b, magic[:]...)
	b = append(b, program[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	dps := make([]string, 0, len(entries))
	for dp := range entries {
		dps = append(dps, dp)
	}
	slices.Sort(dps)
	for _, dp := range dps {
		e := entries[dp]
		b = binary.BigEndian.AppendUint16(b, uint16(len(dp)))
		b = append(b, dp...)
		b = binary.BigEndian.AppendUint64(b, e.Key)
		b = binary.BigEndian.AppendUint64(b, e.Flows)
		b = binary.BigEndian.AppendUint32(b, uint32(e.Count))
	}
	return binary.BigEndian.AppendUint64(b, Digest(b))
}

func decode(b []byte, program Program) (map[string]Entry, error) {
	const head = len(magic) + len(Program{}) + 4
	if len(b) < head+8 || !bytes.Equal(b[:len(magic)], magic[:]) {
		return nil, errors.New("flowcache: not a cache file of this format")
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if Digest(body) != sum {
		return nil, errors.New("flowcache: the file is damaged (its digest differs)")
	}
	if !bytes.Equal(body[len(magic):len(magic)+len(program)], program[:]) {
		return nil, ErrOtherProgram
	}
	n := binary.BigEndian.Uint32(body[head-4:])
	rest := body[head:]
	out := make(map[string]Entry, min(int(n), len(rest)/22))
	for range n {
		if len(rest) < 2 {
			return nil, errors.New("flowcache: the file is truncated")
		}
		l := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+l+20 {
			return nil, errors.New("flowcache: the file is truncated")
		}
		dp := string(rest[2 : 2+l])
		rest = rest[2+l:]
		out[dp] = Entry{Key: binary.BigEndian.Uint64(rest), Flows: binary.BigEndian.Uint64(rest[8:]), Count: int(binary.BigEndian.Uint32(rest[16:]))}
		rest = rest[20:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("flowcache: %d bytes after the last entry", len(rest))
	}
	return out, nil
}
