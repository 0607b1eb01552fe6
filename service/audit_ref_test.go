package service

import (
	"context"
	"testing"
)

// TestCreateAuditResource: a create's audit event names the created object, whether the client gave its uuid or
// not; a create refused for a malformed client uuid names none (the bad value is in the error), so
// audits(resourceUuid) is never keyed by a string that is not a uuid.
func TestCreateAuditResource(t *testing.T) {
	ctx := WithActor(context.Background(), "tester")
	svc, st := openService(t, "")
	t.Cleanup(func() { st.Close() })

	const given = "0000000A-0000-4000-8000-0000000000C1"
	c, err := svc.CreateCluster(ctx, ClusterInput{UUID: given, Name: "given"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := svc.CreateCluster(ctx, ClusterInput{Name: "generated"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateCluster(ctx, ClusterInput{UUID: "not-a-uuid", Name: "bad"}); err == nil {
		t.Fatal("a malformed uuid was accepted")
	}
	evs, err := svc.Audits(ctx, AuditQuery{Operation: "createCluster"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d createCluster events, want 3", len(evs))
	}
	// newest first
	if evs[0].Success || evs[0].ResourceUUID != "" || evs[0].Error == "" {
		t.Errorf("refused create: success=%v resourceUuid=%q error=%q, want a refusal naming no resource",
			evs[0].Success, evs[0].ResourceUUID, evs[0].Error)
	}
	if !evs[1].Success || evs[1].ResourceUUID != c2.UUID {
		t.Errorf("create with a generated uuid: resourceUuid=%q, want %q", evs[1].ResourceUUID, c2.UUID)
	}
	if !evs[2].Success || evs[2].ResourceUUID != c.UUID || c.UUID != "0000000a-0000-4000-8000-0000000000c1" {
		t.Errorf("create with a given uuid: resourceUuid=%q, cluster %q, want the lower-case given uuid",
			evs[2].ResourceUUID, c.UUID)
	}
}
