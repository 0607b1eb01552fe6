package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"portmirror/model"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openAt(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func mustUpdate(t *testing.T, s *Store, fn func(tx *Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	q := int64(1000)
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Put(model.Cluster{UUID: "c1", Name: "one"})
		tx.Put(model.Host{UUID: "h1", Name: "h", ClusterUUID: "c1", Bridge: "br-int"})
		tx.Put(model.VmNic{UUID: "n1", VmUUID: "v1", MAC: "02:00:00:00:00:01", QoS: &model.NicQoS{InboundBandwidthBps: &q}})
		tx.Put(model.FlowNetwork{UUID: "f1", Name: "f", CIDR: "198.18.0.0/24", ClusterUUIDs: []string{"c1"}})
		tx.Put(model.FlowEndpoint{FlowNetworkUUID: "f1", HostUUID: "h1", IP: "198.18.0.1"})
		tx.Audit(model.AuditEvent{Operation: "op", ResourceUUID: "c1", Success: true})
		return nil
	})
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Put(model.Cluster{UUID: "c0", Name: "zero"})
		tx.Put(model.Cluster{UUID: "c1", Name: "renamed"}) // keeps its place
		tx.Audit(model.AuditEvent{Operation: "op2", ResourceUUID: "c1", Success: true})
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir)
	defer s.Close()
	cs := List[model.Cluster](s)
	if len(cs) != 2 || cs[0].UUID != "c1" || cs[0].Name != "renamed" || cs[1].UUID != "c0" {
		t.Fatalf("clusters after reopen: %+v", cs)
	}
	nic, ok := Get[model.VmNic](s, "n1")
	if !ok || nic.QoS == nil || *nic.QoS.InboundBandwidthBps != 1000 {
		t.Fatalf("nic after reopen: %+v", nic)
	}
	if eps := Lookup[model.FlowEndpoint](s, IdxHost, "h1"); len(eps) != 1 || eps[0].IP != "198.18.0.1" {
		t.Fatalf("endpoints of h1: %+v", eps)
	}
	evs, err := s.Audits(context.Background(), AuditQuery{First: 10})
	if err != nil || len(evs) != 2 || evs[0].Operation != "op2" || evs[0].ID <= evs[1].ID {
		t.Fatalf("audits after reopen: %+v %v", evs, err)
	}
	// Ids keep growing after a restart.
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Audit(model.AuditEvent{Operation: "op3"})
		return nil
	})
	evs, _ = s.Audits(context.Background(), AuditQuery{First: 1})
	if evs[0].Operation != "op3" || evs[0].ID <= "00000000000000000002" {
		t.Fatalf("newest after restart: %+v", evs)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	ch, cancel := s.Subscribe(10)
	defer cancel()
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx *Txn) error {
		tx.Put(model.Cluster{UUID: "c1", Name: "x"})
		tx.Audit(model.AuditEvent{Operation: "x"})
		if _, ok := Get[model.Cluster](tx, "c1"); !ok {
			t.Error("a txn does not see its own write")
		}
		if _, ok := Get[model.Cluster](s, "c1"); ok {
			t.Error("the committed view shows an uncommitted write")
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n := Count[model.Cluster](s); n != 0 {
		t.Fatalf("clusters = %d", n)
	}
	if evs, _ := s.Audits(context.Background(), AuditQuery{First: 10}); len(evs) != 0 {
		t.Fatalf("audit events: %+v", evs)
	}
	select {
	case c := <-ch:
		t.Fatalf("change published for a failed update: %+v", c)
	default:
	}
}

func TestTxnOverlayLookup(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	mustUpdate(t, s, func(tx *Txn) error {
		for i := range 4 {
			tx.Put(model.Session{UUID: fmt.Sprint("s", i), PortMirrorUUID: "p1", SourceNicUUID: fmt.Sprint("n", i)})
		}
		return nil
	})
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Delete(KindSession, "s1")
		tx.Put(model.Session{UUID: "s2", PortMirrorUUID: "p2"}) // moves away
		tx.Put(model.Session{UUID: "s4", PortMirrorUUID: "p1"})
		tx.Put(model.Session{UUID: "s5", PortMirrorUUID: "p2"})
		got := ids(Lookup[model.Session](tx, IdxPortMirror, "p1"))
		if want := []string{"s0", "s3", "s4"}; !slices.Equal(got, want) {
			t.Errorf("in txn p1 = %v, want %v", got, want)
		}
		got = ids(Lookup[model.Session](tx, IdxPortMirror, "p2"))
		if want := []string{"s2", "s5"}; !slices.Equal(got, want) {
			t.Errorf("in txn p2 = %v, want %v", got, want)
		}
		if got := ids(List[model.Session](tx)); !slices.Equal(got, []string{"s0", "s2", "s3", "s4", "s5"}) {
			t.Errorf("in txn list = %v", got)
		}
		if got := ids(Lookup[model.Session](s, IdxPortMirror, "p1")); !slices.Equal(got, []string{"s0", "s1", "s2", "s3"}) {
			t.Errorf("committed p1 during txn = %v", got)
		}
		return nil
	})
	if got := ids(Lookup[model.Session](s, IdxPortMirror, "p1")); !slices.Equal(got, []string{"s0", "s3", "s4"}) {
		t.Errorf("after commit p1 = %v", got)
	}
	if got := ids(Lookup[model.Session](s, IdxSource, "n3")); !slices.Equal(got, []string{"s3"}) {
		t.Errorf("source n3 = %v", got)
	}
}

func ids(ss []model.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.UUID)
	}
	return out
}

func TestQueriesReturnCopies(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	q := int64(5)
	mustUpdate(t, s, func(tx *Txn) error {
		tx.Put(model.FlowNetwork{UUID: "f", ClusterUUIDs: []string{"a"}})
		tx.Put(model.VmNic{UUID: "n", QoS: &model.NicQoS{InboundBandwidthBps: &q}})
		return nil
	})
	q = 6
	f, _ := Get[model.FlowNetwork](s, "f")
	f.ClusterUUIDs[0] = "zzz"
	n, _ := Get[model.VmNic](s, "n")
	*n.QoS.InboundBandwidthBps = 7
	f2, _ := Get[model.FlowNetwork](s, "f")
	n2, _ := Get[model.VmNic](s, "n")
	if f2.ClusterUUIDs[0] != "a" || *n2.QoS.InboundBandwidthBps != 5 {
		t.Fatalf("stored objects changed through a copy: %+v %+v", f2, *n2.QoS.InboundBandwidthBps)
	}
}

func TestAuditQueries(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	type ev struct {
		op, res string
		rel     []string
	}
	evs := []ev{{"a", "pm1", nil}, {"b", "pm1", []string{"s1"}}, {"a", "pm2", nil}, {"c", "pm1", []string{"s2"}},
		{"b", "pm2", []string{"s1"}}, {"a", "", nil}}
	for i, e := range evs {
		mustUpdate(t, s, func(tx *Txn) error {
			tx.Audit(model.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Operation: e.op, ResourceUUID: e.res, Related: e.rel})
			return nil
		})
	}
	ops := func(q AuditQuery) string {
		t.Helper()
		got, err := s.Audits(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, e := range got {
			out += e.Operation + e.ResourceUUID + " "
		}
		return out
	}
	all, _ := s.Audits(context.Background(), AuditQuery{First: 100})
	cases := []struct {
		name string
		q    AuditQuery
		want string
	}{
		{"all newest first", AuditQuery{First: 100}, "a c ... "},
		{"first 2", AuditQuery{First: 2}, "a bpm2 "},
		{"by resource", AuditQuery{ResourceUUID: "pm1", First: 100}, "cpm1 bpm1 apm1 "},
		{"by related", AuditQuery{ResourceUUID: "s1", First: 100}, "bpm2 bpm1 "},
		{"operation", AuditQuery{Operation: "a", First: 100}, "a apm2 apm1 "},
		{"since until", AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute), First: 100}, "cpm1 apm2 bpm1 "},
		{"after", AuditQuery{After: all[1].ID, First: 2}, "cpm1 apm2 "},
		{"after with resource", AuditQuery{ResourceUUID: "pm1", After: all[2].ID, First: 100}, "bpm1 apm1 "},
		{"nothing", AuditQuery{ResourceUUID: "nope", First: 100}, ""},
	}
	cases[0].want = "a bpm2 cpm1 apm2 bpm1 apm1 "
	for _, c := range cases {
		if got := ops(c.q); got != c.want {
			t.Errorf("%s: got %q want %q", c.name, got, c.want)
		}
	}
}

func TestBulkPutAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	var objs []any
	// keys in another order than the creation's (uuids are random): the load puts them back in creation order
	perm := rand.New(rand.NewPCG(3, 4)).Perm(20000)
	hostUUID := func(i int) string { return fmt.Sprintf("%05d-h%05d", perm[i], i) }
	for i := range 20000 {
		objs = append(objs, model.Host{UUID: hostUUID(i), Name: fmt.Sprint("host-", i), ClusterUUID: "c1", Bridge: "br-int"})
		if i%4 == 0 { // another kind between them: the load decodes in batches on several goroutines
			objs = append(objs, model.Cluster{UUID: fmt.Sprintf("c%05d", i), Name: fmt.Sprint("cluster-", i)})
		}
	}
	if err := s.BulkPut(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if n := len(Lookup[model.Host](s, IdxCluster, "c1")); n != 20000 {
		t.Fatalf("hosts in c1 = %d", n)
	}
	s.Close()
	s = openAt(t, dir)
	defer s.Close()
	hs := List[model.Host](s)
	if len(hs) != 20000 {
		t.Fatalf("after reopen: %d hosts", len(hs))
	}
	for i, h := range hs {
		if h.UUID != hostUUID(i) || h.Name != fmt.Sprint("host-", i) {
			t.Fatalf("after reopen: host %d is %s %q", i, h.UUID, h.Name)
		}
	}
	if cs := List[model.Cluster](s); len(cs) != 5000 || cs[4999].Name != "cluster-19996" {
		t.Fatalf("after reopen: %d clusters", len(cs))
	}
}

func TestSchemaVersionChecked(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	if err := s.db.Update(func(txn *badgerTxn) error { return txn.Set([]byte(keySchema), []byte("9")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), Options{Dir: dir, Logger: quiet()}); err == nil {
		t.Fatal("opened a store with an unknown schema version")
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s := openAt(t, t.TempDir())
	s.Close()
	if err := s.Update(context.Background(), func(tx *Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// TestLookupPage holds LookupPage and LookupCount against Lookup: every page, from every cursor, of a port mirror
// whose sessions are interleaved with another's, some updated (they keep their place) and some deleted.
func TestLookupPage(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	const n = 130 // pages of every size, from every cursor
	mustUpdate(t, s, func(tx *Txn) error {
		for i := range n {
			for _, pm := range []string{"pm-a", "pm-b"} {
				tx.Put(model.Session{UUID: fmt.Sprintf("%s-s%03d", pm, i), Name: fmt.Sprint("s", i), PortMirrorUUID: pm})
			}
		}
		return nil
	})
	mustUpdate(t, s, func(tx *Txn) error {
		for i := 0; i < n; i += 7 {
			tx.Put(model.Session{UUID: fmt.Sprintf("pm-a-s%03d", i), Name: "renamed", PortMirrorUUID: "pm-a"})
		}
		for i := 3; i < n; i += 11 {
			tx.Delete(KindSession, fmt.Sprintf("pm-a-s%03d", i))
		}
		return nil
	})
	all := Lookup[model.Session](s, IdxPortMirror, "pm-a")
	if got := LookupCount[model.Session](s, IdxPortMirror, "pm-a"); got != len(all) || got != n-12 {
		t.Fatalf("LookupCount %d, Lookup has %d, want %d", got, len(all), n-12)
	}
	afters := []string{""}
	for _, ses := range all {
		afters = append(afters, ses.UUID)
	}
	for _, after := range afters {
		start := 0
		if after != "" {
			start = slices.IndexFunc(all, func(s model.Session) bool { return s.UUID == after }) + 1
		}
		for _, first := range []int{-1, 0, 1, 2, 10, 99, 100, 101, n - 12, n + 5} {
			want := all[start:]
			if first >= 0 && first < len(want) {
				want = want[:first]
			}
			got, ok := LookupPage[model.Session](s, IdxPortMirror, "pm-a", after, first)
			if !ok || !slices.EqualFunc(got, want, func(a, b model.Session) bool { return a.UUID == b.UUID && a.Name == b.Name }) {
				t.Fatalf("LookupPage(after %q, first %d) = %v (ok %v), want %v", after, first, got, ok, want)
			}
		}
	}
	for _, after := range []string{"pm-a-s003", "pm-b-s001", "nothing"} { // deleted, of the other port mirror, unknown
		if got, ok := LookupPage[model.Session](s, IdxPortMirror, "pm-a", after, 5); ok {
			t.Fatalf("LookupPage(after %q) = %d sessions, want not found", after, len(got))
		}
	}
}
