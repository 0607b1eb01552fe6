package service

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// BenchmarkCreatePortMirror10Sessions measures createPortMirror with 10 sessions on a real on-disk store with
// synchronous writes: the rules, the tunnel keys, one Badger commit (with fsync) and the audit event. Each
// iteration uses a fresh flow network (created outside the timer). It reports p50 and p99 besides the mean.
func BenchmarkCreatePortMirror10Sessions(b *testing.B) {
	l := newMirrorLab(b, 10, 10, "198.18.6.0/24")
	ctx := l.ctx
	var durs []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		fn, err := l.svc.CreateFlowNetwork(ctx, FlowNetworkInput{Name: "bench", CIDR: "198.19.0.0/24", ClusterUUIDs: []string{l.c1}})
		if err != nil {
			b.Fatal(err)
		}
		in := PortMirrorInput{Name: fmt.Sprint("pm", i), FlowNetworkUUID: fn.UUID, Enable: true}
		for j := range 10 {
			in.Sessions = append(in.Sessions, SessionInput{Name: fmt.Sprint("s", j), Type: model.Bidirection,
				SourceNicUUID: l.srcs[j], DestinationNicUUID: l.dsts[(i+j)%10]})
		}
		b.StartTimer()
		start := time.Now()
		if _, err := l.svc.CreatePortMirror(ctx, in); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durs)
	if len(durs) > 0 {
		b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
	}
}

// TestIdleHeap reports the heap in use after opening an empty on-disk store, and holds it under a bound that
// catches Badger's default caches (hundreds of MB) coming back.
func TestIdleHeap(t *testing.T) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = New(st, Options{Logger: quiet()})
	runtime.GC()
	runtime.ReadMemStats(&m1)
	grew := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	status, _ := os.ReadFile("/proc/self/status")
	rss := ""
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			rss = strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	t.Logf("heap in use after opening an empty store: %.1f MiB (%.1f MiB more than before), sys %.1f MiB, process RSS %s",
		float64(m1.HeapInuse)/(1<<20), float64(grew)/(1<<20), float64(m1.Sys)/(1<<20), rss)
	if grew > 64<<20 {
		t.Fatalf("opening an empty store takes %d MiB of heap", grew>>20)
	}
}

// BenchmarkList10kSessions builds 10k sessions with their NICs (in bulk) and lists them with their NICs the way
// the API does. (A figure, not a test: `make bench` reports the API's own p50 over HTTP.)
func BenchmarkList10kSessions(b *testing.B) {
	st, err := store.Open(context.Background(), store.Options{Dir: b.TempDir(), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var objs []any
	for i := range 10000 {
		src := fmt.Sprintf("00000000-0000-4000-8000-%012d", 2*i)
		dst := fmt.Sprintf("00000000-0000-4000-8000-%012d", 2*i+1)
		objs = append(objs, model.VmNic{UUID: src, VmUUID: "vm", MAC: "02:00:00:00:00:01"}, model.VmNic{UUID: dst, VmUUID: "vm", MAC: "02:00:00:00:00:02"},
			model.Session{UUID: fmt.Sprintf("10000000-0000-4000-8000-%012d", i), PortMirrorUUID: "pm", SourceNicUUID: src, DestinationNicUUID: dst, TunnelKey: uint32(i + 1)})
	}
	if err := st.BulkPut(context.Background(), objs); err != nil {
		b.Fatal(err)
	}
	svc := New(st, Options{Logger: quiet()})
	ctx := context.Background()
	for b.Loop() {
		ss, _ := svc.Sessions(ctx, "pm")
		n := 0
		for _, s := range ss {
			a, _ := svc.VmNic(ctx, s.SourceNicUUID)
			d, _ := svc.VmNic(ctx, s.DestinationNicUUID)
			n += len(a.MAC) + len(d.MAC)
		}
		if len(ss) != 10000 || n == 0 {
			b.Fatalf("%d sessions", len(ss))
		}
	}
}
