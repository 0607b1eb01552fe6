package service

import (
	"fmt"
	"testing"

	"portmirror/model"
)

// TestAttachLargeCluster attaches a flow network to a cluster of 10k hosts (loaded in bulk): one transaction
// with 10k endpoints must fit Badger's transaction limit.
func TestAttachLargeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk load")
	}
	f := newFixture(t)
	var objs []any
	for i := range 10000 {
		objs = append(objs, model.Host{UUID: fmt.Sprintf("20000000-0000-4000-8000-%012d", i), Name: fmt.Sprint("bulk", i), ClusterUUID: f.c2, Bridge: "br-int"})
	}
	if err := f.st.BulkPut(f.ctx, objs); err != nil {
		t.Fatal(err)
	}
	fn, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "big", CIDR: "198.18.64.0/18", ClusterUUIDs: []string{f.c2}})
	if err != nil {
		t.Fatal(err)
	}
	eps, _ := f.svc.FlowEndpoints(f.ctx, fn.UUID)
	if len(eps) != 10001 {
		t.Fatalf("%d endpoints", len(eps))
	}
	if _, err := f.svc.DetachFlowNetworkFromCluster(f.ctx, fn.UUID, f.c2); err != nil {
		t.Fatal(err)
	}
}
