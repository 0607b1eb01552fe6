package service

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"portmirror/model"
	"portmirror/store"
)

// TestProductGuide walks every operation of the product on a port mirror and checks what a user sees, including
// the audit trail.
func TestProductGuide(t *testing.T) {
	f := newFixture(t)
	svc, ctx := f.svc, f.ctx
	// Create with enable and sessions.
	pm, err := svc.CreatePortMirror(ctx, PortMirrorInput{Name: "watch-web", Description: "first", FlowNetworkUUID: f.fn2, Enable: true,
		Sessions: []SessionInput{
			{Name: "in", Type: model.Ingress, SourceNicUUID: f.n1b, DestinationNicUUID: f.n2c},
			{Name: "out", Type: model.Egress, SourceNicUUID: f.n4a, DestinationNicUUID: f.n2c},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if pm.State != model.Enabled || pm.Name != "watch-web" || pm.Description != "first" || pm.FlowNetworkUUID != f.fn2 {
		t.Fatalf("created %+v", pm)
	}
	ss, _ := svc.Sessions(ctx, pm.UUID)
	if len(ss) != 2 || ss[0].Name != "in" || ss[1].Name != "out" || ss[0].TunnelKey != 1 || ss[1].TunnelKey != 1 {
		t.Fatalf("sessions %+v (same destination: same key 1)", ss)
	}
	if got, _ := svc.PortMirrorOfFlowNetwork(ctx, f.fn2); got == nil || got.UUID != pm.UUID {
		t.Fatalf("flow network's port mirror = %v", got)
	}
	// Rename, describe, clear the description.
	name, desc, empty := "watch-web-2", "second", ""
	if pm, err = svc.UpdatePortMirror(ctx, pm.UUID, &name, nil); err != nil || pm.Name != name || pm.Description != "first" {
		t.Fatalf("rename: %+v %v", pm, err)
	}
	if pm, err = svc.UpdatePortMirror(ctx, pm.UUID, nil, &desc); err != nil || pm.Name != name || pm.Description != desc {
		t.Fatalf("describe: %+v %v", pm, err)
	}
	if pm, err = svc.UpdatePortMirror(ctx, pm.UUID, nil, &empty); err != nil || pm.Description != "" {
		t.Fatalf("clear description: %+v %v", pm, err)
	}
	// Disable (twice: idempotent), status INACTIVE; enable.
	for range 2 {
		if pm, err = svc.DisablePortMirror(ctx, pm.UUID); err != nil || pm.State != model.Disabled {
			t.Fatalf("disable: %+v %v", pm, err)
		}
	}
	if st, _ := svc.SessionStatus(ctx, ss[0]); st != model.StatusInactive {
		t.Fatalf("status of a disabled port mirror's session = %s", st)
	}
	if pm, err = svc.EnablePortMirror(ctx, pm.UUID); err != nil || pm.State != model.Enabled {
		t.Fatalf("enable: %+v %v", pm, err)
	}
	if st, reason := svc.SessionStatus(ctx, ss[0]); st != model.StatusPending || reason != "controller not running" {
		t.Fatalf("status without controller = %s %q", st, reason)
	}
	// Add a session, delete one.
	added, err := svc.AddPortMirrorSession(ctx, pm.UUID, SessionInput{Name: "third", Type: model.Bidirection, SourceNicUUID: f.n3a, DestinationNicUUID: f.n2a})
	if err == nil {
		t.Fatalf("added a session to a default destination in an unattached cluster: %+v", added)
	}
	if _, err := svc.AttachFlowNetworkToCluster(ctx, f.fn2, f.c2); err != nil {
		t.Fatal(err)
	}
	added, err = svc.AddPortMirrorSession(ctx, pm.UUID, SessionInput{Name: "third", Type: model.Bidirection, SourceNicUUID: f.n3a, DestinationNicUUID: f.n3b})
	if err != nil || added.TunnelKey != 2 || added.PortMirrorUUID != pm.UUID {
		t.Fatalf("add session: %+v %v", added, err)
	}
	if err := svc.DeletePortMirrorSession(ctx, ss[0].UUID); err != nil {
		t.Fatal(err)
	}
	ss2, _ := svc.Sessions(ctx, pm.UUID)
	if len(ss2) != 2 || ss2[0].UUID != ss[1].UUID || ss2[1].UUID != added.UUID {
		t.Fatalf("sessions after add/delete: %+v", ss2)
	}
	// Audit: the port mirror's events, newest first, with the session operations under it.
	evs := audits(t, svc, AuditQuery{ResourceUUID: pm.UUID})
	var ops []string
	for _, e := range evs {
		ops = append(ops, e.Operation)
		if e.Actor != "tester" || e.ResourceType != "PortMirror" {
			t.Errorf("event %+v", e)
		}
	}
	want := []string{"deletePortMirrorSession", "addPortMirrorSession", "addPortMirrorSession", "enablePortMirror",
		"disablePortMirror", "disablePortMirror", "updatePortMirror", "updatePortMirror", "updatePortMirror", "createPortMirror"}
	if !slices.Equal(ops, want) {
		t.Fatalf("port mirror audit\n got %v\nwant %v", ops, want)
	}
	if evs[2].Success || !strings.Contains(evs[2].Error, "rule") {
		t.Errorf("refused addPortMirrorSession event %+v", evs[2])
	}
	// A session's uuid finds its events (create and delete of ss[0]).
	sevs := audits(t, svc, AuditQuery{ResourceUUID: ss[0].UUID})
	if len(sevs) != 2 || sevs[0].Operation != "deletePortMirrorSession" || sevs[1].Operation != "createPortMirror" || sevs[0].ResourceUUID != pm.UUID {
		t.Fatalf("session audit %+v", sevs)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(sevs[0].Detail), &detail); err != nil || detail["deleted"] == nil {
		t.Fatalf("detail %q: %v", sevs[0].Detail, err)
	}
	// Operation filter, paging with after.
	if e := audits(t, svc, AuditQuery{ResourceUUID: pm.UUID, Operation: "updatePortMirror"}); len(e) != 3 {
		t.Fatalf("updatePortMirror events = %d", len(e))
	}
	page1 := audits(t, svc, AuditQuery{ResourceUUID: pm.UUID, First: 4})
	page2 := audits(t, svc, AuditQuery{ResourceUUID: pm.UUID, First: 4, After: page1[3].ID})
	if len(page1) != 4 || len(page2) != 4 || page2[0].ID != evs[4].ID {
		t.Fatalf("paging: %d %d", len(page1), len(page2))
	}
	// Delete: the sessions go, the flow network is free, the audit stays.
	if err := svc.DeletePortMirror(ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PortMirror(ctx, pm.UUID); AsError(err).Code != CodeNotFound {
		t.Fatalf("deleted port mirror: %v", err)
	}
	if n := len(store.Lookup[model.Session](f.st, store.IdxPortMirror, pm.UUID)); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	if got, _ := svc.PortMirrorOfFlowNetwork(ctx, f.fn2); got != nil {
		t.Fatalf("flow network still occupied by %+v", got)
	}
	if e := audits(t, svc, AuditQuery{ResourceUUID: pm.UUID, First: 1}); e[0].Operation != "deletePortMirror" || !e[0].Success {
		t.Fatalf("last event %+v", e[0])
	}
	if err := svc.DeleteFlowNetwork(ctx, f.fn2); err != nil {
		t.Fatal(err)
	}
}

func TestInventoryOperations(t *testing.T) {
	f := newFixture(t)
	svc, ctx := f.svc, f.ctx
	// Normalisation of client input.
	vm, err := svc.CreateVmInstance(ctx, VmInstanceInput{UUID: "ABCDEF00-0000-4000-8000-000000000001", Name: "n", HostUUID: strings.ToUpper(f.h2),
		Nics: []VmNicInput{{MAC: "02-AB-CD-EF-00-01", IP: "10.0.0.1"}}})
	if err != nil || vm.UUID != "abcdef00-0000-4000-8000-000000000001" {
		t.Fatalf("create vm: %+v %v", vm, err)
	}
	nics, _ := svc.VmNics(ctx, vm.UUID)
	if len(nics) != 1 || nics[0].MAC != "02:ab:cd:ef:00:01" || nics[0].Index != 0 {
		t.Fatalf("nics %+v", nics)
	}
	h, err := svc.RegisterHost(ctx, HostInput{Name: "hv9", ClusterUUID: f.c2, OVSDBAddress: "tcp:198.18.0.1:6640", DatapathID: "0xAB"})
	if err != nil || h.Bridge != "br-int" || h.DatapathID != "00000000000000ab" {
		t.Fatalf("register host: %+v %v", h, err)
	}
	// Migration within attached clusters is fine; the VM moves.
	if vm, err = svc.MigrateVmInstance(ctx, f.vm1, f.h2); err != nil || vm.HostUUID != f.h2 {
		t.Fatalf("migrate: %+v %v", vm, err)
	}
	// QoS: clearing on a mirrored NIC is fine; setting elsewhere too.
	if n, err := svc.SetVmNicQos(ctx, f.n1a, nil); err != nil || n.QoS != nil {
		t.Fatalf("clear qos: %+v %v", n, err)
	}
	if n, err := svc.SetVmNicQos(ctx, f.n4b, &model.NicQoS{}); err != nil || n.QoS != nil {
		t.Fatalf("clear qos with empty: %+v %v", n, err)
	}
	// Deleting a host removes its VMs, NICs and endpoints.
	hvX, _ := svc.RegisterHost(ctx, HostInput{Name: "hvX", ClusterUUID: f.c1})
	vmX, _ := svc.CreateVmInstance(ctx, VmInstanceInput{Name: "x", HostUUID: hvX.UUID, Nics: []VmNicInput{{MAC: "02:00:00:00:aa:01"}}})
	if eps, _ := svc.FlowEndpointsOfHost(ctx, hvX.UUID); len(eps) != 2 {
		t.Fatalf("endpoints of a new host in alpha = %+v", eps)
	}
	if err := svc.DeleteHost(ctx, hvX.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.VmInstance(ctx, vmX.UUID); AsError(err).Code != CodeNotFound {
		t.Fatalf("vm of deleted host: %v", err)
	}
	if eps, _ := svc.FlowEndpointsOfHost(ctx, hvX.UUID); len(eps) != 0 {
		t.Fatalf("endpoints of deleted host: %+v", eps)
	}
	if n := len(store.Lookup[model.VmNic](f.st, store.IdxVm, vmX.UUID)); n != 0 {
		t.Fatalf("nics of deleted vm: %d", n)
	}
	// Deleting a VM not in use.
	if err := svc.DeleteVmInstance(ctx, f.vm3); err != nil {
		t.Fatal(err)
	}
	// Lists are in creation order.
	cs, _ := svc.Clusters(ctx)
	if len(cs) != 2 || cs[0].Name != "alpha" || cs[1].Name != "beta" {
		t.Fatalf("clusters %+v", cs)
	}
	hs, _ := svc.HostsInCluster(ctx, f.c1)
	if len(hs) != 2 || hs[0].Name != "hv1" || hs[1].Name != "hv2" {
		t.Fatalf("hosts of alpha %+v", hs)
	}
	fns, _ := svc.FlowNetworksOfCluster(ctx, f.c1)
	if len(fns) != 2 {
		t.Fatalf("flow networks of alpha %+v", fns)
	}
	// Host datapath id comes from Live when none is registered.
	svc.SetLive(fakeLive{dp: "00000000000000ff"})
	if h2, _ := svc.Host(ctx, f.h2); h2.DatapathID != "00000000000000ff" {
		t.Fatalf("host datapath id from live = %q", h2.DatapathID)
	}
	if h1, _ := svc.Host(ctx, f.h1); h1.DatapathID != "0000000000000001" {
		t.Fatalf("registered datapath id = %q", h1.DatapathID)
	}
	ss, _ := svc.AllSessions(ctx)
	if st, reason := svc.SessionStatus(ctx, ss[0]); st != model.StatusActive || reason != "live" {
		t.Fatalf("status from live = %s %q", st, reason)
	}
	if !svc.HostConnected(ctx, f.h1) || len(svc.Switches(ctx)) != 1 {
		t.Fatal("live state not passed through")
	}
}

type fakeLive struct{ dp string }

func (l fakeLive) SessionStatus(string) (model.SessionStatus, string) {
	return model.StatusActive, "live"
}
func (l fakeLive) SessionRevision(string) (uint64, bool) { return 0, false }
func (l fakeLive) Switches() []model.Switch              { return []model.Switch{{DatapathID: l.dp}} }
func (l fakeLive) NicPort(string) *model.SwitchPort      { return nil }
func (l fakeLive) HostConnected(string) bool             { return true }
func (l fakeLive) HostDatapathID(string) string          { return l.dp }

func TestAuditsPageSize(t *testing.T) {
	f := newFixture(t)
	if err := f.st.Update(context.Background(), func(tx *store.Txn) error {
		for range 1100 {
			tx.Audit(model.AuditEvent{Operation: "enablePortMirror", ResourceUUID: f.pm1, Success: true})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(audits(t, f.svc, AuditQuery{})); n != 100 {
		t.Fatalf("default page = %d, want 100", n)
	}
	if n := len(audits(t, f.svc, AuditQuery{First: 5000})); n != 1000 {
		t.Fatalf("page of 5000 = %d, want the cap 1000", n)
	}
	if _, err := f.svc.Audits(context.Background(), AuditQuery{After: "garbage"}); AsError(err).Code != CodeValidation {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestAuditRefused(t *testing.T) {
	f := newFixture(t)
	ctx := WithActor(context.Background(), "viewer-bob")
	err := &Error{Code: CodeForbidden, Message: "viewer-bob may not call deletePortMirror"}
	if werr := f.svc.AuditRefused(ctx, "deletePortMirror", "PortMirror", f.pm1, err, map[string]string{"uuid": f.pm1}); werr != nil {
		t.Fatal(werr)
	}
	e := audits(t, f.svc, AuditQuery{ResourceUUID: f.pm1, First: 1})[0]
	if e.Success || e.Actor != "viewer-bob" || e.Operation != "deletePortMirror" || e.Error != err.Message || !strings.Contains(e.Detail, f.pm1) {
		t.Fatalf("event %+v", e)
	}
}

// TestUpdatePortMirrorSession: a field left out stays, a given one changes, an empty filter clears; sessions
// differing only in filters coexist (s1 copies the same NICs both ways, unfiltered); the revision counts definition changes only; each call is one audit event.
func TestUpdatePortMirrorSession(t *testing.T) {
	f := newFixture(t)
	web := []model.FilterRule{{Protocol: "tcp", DestinationPorts: "80"}}
	in := SessionInput{Name: "web", Type: model.Egress, SourceNicUUID: f.n1a, DestinationNicUUID: f.n2b, Filters: web}
	ses := f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)).(model.Session)
	want := []model.FilterRule{{Action: model.FilterAccept, Protocol: "tcp", DestinationPorts: "80"}}
	if !slices.Equal(ses.Filters, want) || ses.Revision != 0 {
		t.Fatalf("added %+v, want canonical filters %+v at revision 0", ses, want)
	}

	name := "web2"
	got := f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{Name: &name})).(model.Session)
	if got.Name != "web2" || !slices.Equal(got.Filters, want) || got.Revision != 0 || got.TunnelKey != ses.TunnelKey {
		t.Errorf("rename: %+v; want name web2, filters kept, revision 0, tunnel key %d", got, ses.TunnelKey)
	}
	dns := []model.FilterRule{{Action: model.FilterReject, Protocol: "udp", SourcePorts: "53"}, {Protocol: "udp"}}
	got = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{Filters: &dns})).(model.Session)
	if got.Name != "web2" || len(got.Filters) != 2 || got.Filters[0].Action != model.FilterReject || got.Revision != 1 {
		t.Errorf("refilter: %+v; want the name kept, two rules, revision 1", got)
	}
	stored, err := f.svc.Session(f.ctx, ses.UUID)
	if err != nil || stored.Revision != 1 || len(stored.Filters) != 2 {
		t.Errorf("stored %+v, %v", stored, err)
	}
	var none []model.FilterRule
	got = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{Filters: &none})).(model.Session)
	if got.Filters != nil || got.Revision != 2 {
		t.Errorf("clear: %+v; want no filters, revision 2", got)
	}
	evs := audits(t, f.svc, AuditQuery{Operation: "updatePortMirrorSession", First: 10})
	if len(evs) != 3 || !evs[0].Success || evs[0].ResourceUUID != f.pm1 || !strings.Contains(evs[0].Detail, ses.UUID) {
		t.Errorf("audit events %+v, want 3 successful ones on the port mirror naming the session", evs)
	}
}

// revLive is a controller whose last plan compiled revision 0 of every session, and reports it ACTIVE.
type revLive struct{ fakeLive }

func (revLive) SessionRevision(string) (uint64, bool) { return 0, true }

// TestStatusPendingUntilRevisionProgrammed: after updatePortMirrorSession changed the definition, the session is
// PENDING while the controller's plan still holds the older revision, whatever the switches confirmed of it.
func TestStatusPendingUntilRevisionProgrammed(t *testing.T) {
	f := newFixture(t)
	f.svc.SetLive(revLive{fakeLive{dp: "0000000000000001"}})
	ses, err := f.svc.Session(f.ctx, f.s1)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := f.svc.SessionStatus(f.ctx, ses); st != model.StatusActive {
		t.Fatalf("before the update: %s, want ACTIVE", st)
	}
	rules := []model.FilterRule{{Protocol: "udp"}}
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{Filters: &rules})).(model.Session)
	if st, why := f.svc.SessionStatus(f.ctx, ses); st != model.StatusPending || why == "" {
		t.Errorf("after the update: %s (%q), want PENDING with a reason", st, why)
	}
	name := "renamed"
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{Name: &name})).(model.Session)
	if ses.Revision != 1 {
		t.Errorf("a rename moved the revision to %d, want 1", ses.Revision)
	}
	n := 128
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{SnapLengthSet: true, SnapLength: &n})).(model.Session)
	if ses.SnapLength != 128 || ses.Revision != 2 || len(ses.Filters) != 1 {
		t.Errorf("snap length set: %+v, want 128 at revision 2, the filter kept", ses)
	}
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{SnapLengthSet: true})).(model.Session)
	if ses.SnapLength != 0 || ses.Revision != 3 {
		t.Errorf("snap length cleared: %+v, want 0 at revision 3", ses)
	}
	kbps := 1
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{BandwidthLimitSet: true, BandwidthLimitKbps: &kbps})).(model.Session)
	if ses.BandwidthLimitKbps != 1 || ses.Revision != 4 || len(ses.Filters) != 1 {
		t.Errorf("limit set: %+v, want 1 kbps at revision 4, the filter kept", ses)
	}
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{Name: &name})).(model.Session)
	if ses.BandwidthLimitKbps != 1 {
		t.Errorf("a rename cleared the limit: %+v", ses)
	}
	ses = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{BandwidthLimitSet: true})).(model.Session)
	if ses.BandwidthLimitKbps != 0 || ses.Revision != 5 {
		t.Errorf("limit cleared: %+v, want unlimited at revision 5", ses)
	}
}
