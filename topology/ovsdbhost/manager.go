// Package ovsdbhost manages one host's OVS bridge through OVSDB: it keeps the bridge under the controllers
// (controller targets, fail_mode=secure, OpenFlow13), keeps one flow-based tunnel port per flow network the host
// has an endpoint on, isolates mirror-destination ports from NORMAL flooding, and reads the bridge's datapath id
// and interfaces for the topology view. It is level-triggered: every pass reads the whole state, computes what
// differs from the desired state and writes only that, in one transaction.
//
// Decisions:
//   - A missing bridge is created (with an internal port of its name), its datapath_type given in HostConfig or
//     else inherited from the first other bridge by name, so a host whose tooling has not created br-int yet still
//     converges. Bridges are never deleted.
//   - Everything this package creates or changes is marked in external_ids: tunnel ports and interfaces carry
//     portmirror-flow-network=<flow network uuid>, our Controller row portmirror-controller=true, an isolated port
//     portmirror-isolated=true with its previous tag and vlan_mode in portmirror-saved-tag and
//     portmirror-saved-vlan-mode. Ports without these marks are never modified, except for isolation, which is
//     asked for by port name.
//   - The bridge lists one Controller row of ours per controller target (a cluster lists every member). The set
//     changes without ever leaving the bridge with zero controllers, since OVS deletes every flow, group and
//     meter when a bridge goes from none to some or back: missing targets are added in one transaction, and only
//     a later round (after a re-read) removes ours that are no longer wanted. Replacing A by B goes
//     {A} -> {A,B} -> {B}. Other controller rows are never touched.
//   - Until the first SetDesired, the tunnel ports and isolated ports of ours are left as they are (the bridge
//     settings and controllers are kept as usual): a manager started before its caller knows what the host needs
//     (a controller restarting reads its store first) must not remove a tunnel port only to add it back under a
//     new OpenFlow port number, which would change every flow that names it.
//   - A read-only manager (SetWritable(false), a cluster follower) connects, reads and publishes the interfaces
//     and the datapath id as usual, and sends no write at all.
//   - Isolation reserves the port for mirroring with a Mirror row of ours that selects nothing and outputs to it
//     (NORMAL then never floods or forwards to it, whatever the VLAN), and parks it in access mode on VLAN 4095,
//     in one transaction; an explicit output: action from a flow still reaches it. VLAN 4095 alone does not
//     isolate: a trunk port carries frames tagged 4095 into it. See isolation.go.
package ovsdbhost

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-openvswitch/ovsdb"

	"portmirror/model"
	"portmirror/topology"
)

// external_ids keys this package owns.
const (
	KeyFlowNetwork    = "portmirror-flow-network"
	KeyController     = "portmirror-controller"
	KeyIsolated       = "portmirror-isolated"
	KeySavedTag       = "portmirror-saved-tag"
	KeySavedVlanMode  = "portmirror-saved-vlan-mode"
	IsolationVLAN     = 4095
	defaultResync     = 30 * time.Second
	defaultCall       = 5 * time.Second
	defaultDPIDPoll   = 250 * time.Millisecond
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
)

// HostConfig says which bridge of which OVSDB to manage.
type HostConfig struct {
	HostUUID string
	Address  string      // "unix:PATH", "tcp:IP:PORT" or "ssl:IP:PORT"
	TLS      *tls.Config // for an ssl: address: the client's certificate and the CA the server's is checked against
	Bridge   string      // "" means model.DefaultBridge
	// ControllerTargets are the controller targets the bridge lists as ours, e.g. "tcp:192.0.2.1:6653", one per
	// controller of the cluster; NewManager sorts and deduplicates them. Empty leaves the bridge's controllers as
	// they are. SetControllerTargets changes them at run time.
	ControllerTargets []string
	DatapathType      string // for creating a missing bridge; "" inherits another bridge's

	ResyncInterval time.Duration // full re-read when nothing happens; default 30s
	CallTimeout    time.Duration // per dial and per transaction; default 5s
	DatapathIDPoll time.Duration // re-read interval while the datapath id is unknown; default 250ms
	MinBackoff     time.Duration // reconnect backoff, doubling up to MaxBackoff; defaults 100ms and 5s
	MaxBackoff     time.Duration
}

// TunnelSpec is one flow-based tunnel port the bridge should have.
type TunnelSpec struct {
	FlowNetworkUUID string
	Encapsulation   model.Encapsulation // "" means GRE
	LocalIP         string              // this host's endpoint IPv4 on the flow network
}

// PortName is the tunnel port's name.
func (t TunnelSpec) PortName() string { return model.TunnelPortName(t.FlowNetworkUUID) }

func (t TunnelSpec) ovsType() string {
	if typ := t.Encapsulation.PortType(); typ != "" {
		return typ
	}
	return "gre"
}

func (t TunnelSpec) options() map[string]string {
	o := map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": t.LocalIP}
	if t.Encapsulation.IsERSPAN() {
		addErspanOptions(o)
	}
	return o
}

// Status is what the manager can tell about its host.
type Status struct {
	Connected  bool
	LastError  string    // the last failure (connection or a refused change), "" after a clean pass
	LastSync   time.Time // end of the last clean pass that applied everything (never while read-only)
	LastRead   time.Time // end of the last pass that read the bridge and published what it read, writable or not
	Generation uint64    // of the latest SetDesired or SetControllerTargets that changed something
	Applied    uint64    // the generation the last clean pass applied in full
	Connects   int       // successful connections so far
	ReadOnly   bool      // SetWritable(false): the manager reads and publishes but writes nothing
	Pending    int       // while read-only: the changes (OVSDB operations) a writable manager would make now
}

// Manager manages one host's bridge. Create it with NewManager, run it with Run.
type Manager struct {
	cfg HostConfig
	log *slog.Logger
	wmu sync.Mutex // held while checking writable and writing; taken before mu

	mu       sync.Mutex
	tunnels  map[string]TunnelSpec // by port name
	isolated map[string]bool       // port names
	told     bool                  // SetDesired has been called: tunnels and isolated are what the caller wants
	targets  []string              // controller targets, sorted, no duplicates
	writable bool
	gen      uint64
	ifaces   []topology.Interface
	dpid     string
	haveRead bool // a read has been published
	status   Status

	wake    chan struct{}
	changed chan struct{}
}

// NewManager checks cfg and returns a manager that does nothing until Run.
func NewManager(cfg HostConfig, logger *slog.Logger) (*Manager, error) {
	if cfg.HostUUID == "" {
		return nil, errors.New("ovsdb host manager: host uuid is empty")
	}
	if _, _, _, err := ParseAddress(cfg.Address); err != nil {
		return nil, fmt.Errorf("host %s: %w", cfg.HostUUID, err)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = model.DefaultBridge
	}
	targets, err := normalizeTargets(cfg.ControllerTargets)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", cfg.HostUUID, err)
	}
	cfg.ControllerTargets = targets
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ResyncInterval, defaultResync)
	def(&cfg.CallTimeout, defaultCall)
	def(&cfg.DatapathIDPoll, defaultDPIDPoll)
	def(&cfg.MinBackoff, defaultMinBackoff)
	def(&cfg.MaxBackoff, defaultMaxBackoff)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg:      cfg,
		log:      logger.With("host", cfg.HostUUID, "ovsdb", cfg.Address, "bridge", cfg.Bridge),
		tunnels:  map[string]TunnelSpec{},
		isolated: map[string]bool{},
		targets:  targets,
		writable: true,
		wake:     make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
	}, nil
}

// normalizeTargets sorts and deduplicates controller targets; an empty one, or one without a "type:" prefix, is
// an error.
func normalizeTargets(targets []string) ([]string, error) {
	out := slices.Clone(targets)
	for _, t := range out {
		if t == "" || !strings.Contains(t, ":") || strings.ContainsAny(t, " \t\n") {
			return nil, fmt.Errorf("controller target %q: want TYPE:ADDRESS, e.g. tcp:192.0.2.1:6653", t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Config returns the manager's configuration with defaults filled in and the current controller targets.
func (m *Manager) Config() HostConfig {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := m.cfg
	cfg.ControllerTargets = slices.Clone(m.targets)
	return cfg
}

// SetControllerTargets sets the controller targets the bridge lists as ours (a cluster's membership changed): it
// sorts and deduplicates them, and wakes the manager, which adds the new ones before it removes the old ones, so
// the bridge never goes through zero controllers. Empty leaves the bridge's controllers as they are from now on.
// It returns the generation that Status().Applied reaches once the bridge holds the targets (and what SetDesired
// asked before). Bad input changes nothing.
func (m *Manager) SetControllerTargets(targets []string) (uint64, error) {
	t, err := normalizeTargets(targets)
	if err != nil {
		return 0, fmt.Errorf("host %s: %w", m.cfg.HostUUID, err)
	}
	m.mu.Lock()
	same := slices.Equal(t, m.targets)
	if !same {
		m.targets = t
		m.gen++
		m.status.Generation = m.gen
	}
	gen := m.gen
	m.mu.Unlock()
	if !same {
		m.Refresh()
	}
	return gen, nil
}

// SetWritable says whether the manager may write OVSDB (true when created). A read-only manager still connects,
// reads, and publishes the interfaces and the datapath id (Feed keeps working), but sends no write transaction:
// SetWritable(false) waits for a transaction under way (at most CallTimeout) and none starts after it returns. Becoming writable wakes the manager, which applies
// what differs at once.
func (m *Manager) SetWritable(writable bool) {
	m.wmu.Lock() // waits for a write under way (at most CallTimeout)
	defer m.wmu.Unlock()
	m.mu.Lock()
	was := m.writable
	m.writable = writable
	m.status.ReadOnly = !writable
	if writable {
		m.status.Pending = 0
	}
	m.mu.Unlock()
	if writable && !was {
		m.Refresh()
	}
}

// SetDesired sets the tunnel ports the bridge should have (exactly these of ours; ours not listed are removed) and
// the ports to isolate from NORMAL (all others that we isolated are restored). It returns the generation that
// Status().Applied reaches once the bridge holds it. Bad input changes nothing. Until it is first called, the
// manager leaves the bridge's tunnel ports and isolated ports of ours as they are.
func (m *Manager) SetDesired(tunnels []TunnelSpec, isolatedPorts []string) (uint64, error) {
	tm := make(map[string]TunnelSpec, len(tunnels))
	for _, t := range tunnels {
		if t.FlowNetworkUUID == "" {
			return 0, fmt.Errorf("host %s: tunnel with an empty flow network uuid", m.cfg.HostUUID)
		}
		if t.Encapsulation == "" {
			t.Encapsulation = model.GRE
		}
		if !t.Encapsulation.Valid() {
			return 0, fmt.Errorf("host %s: tunnel of flow network %s: encapsulation %q is not GRE, VXLAN, ERSPAN_V1 or ERSPAN_V2", m.cfg.HostUUID, t.FlowNetworkUUID, t.Encapsulation)
		}
		ip, err := netip.ParseAddr(t.LocalIP)
		if err != nil || !ip.Is4() {
			return 0, fmt.Errorf("host %s: tunnel of flow network %s: local IP %q is not an IPv4 address", m.cfg.HostUUID, t.FlowNetworkUUID, t.LocalIP)
		}
		t.LocalIP = ip.String()
		name := t.PortName()
		if old, dup := tm[name]; dup {
			return 0, fmt.Errorf("host %s: flow networks %s and %s have the same tunnel port name %s", m.cfg.HostUUID, old.FlowNetworkUUID, t.FlowNetworkUUID, name)
		}
		tm[name] = t
	}
	iso := make(map[string]bool, len(isolatedPorts))
	for _, p := range isolatedPorts {
		if p == "" {
			return 0, fmt.Errorf("host %s: isolated port with an empty name", m.cfg.HostUUID)
		}
		if _, clash := tm[p]; clash {
			return 0, fmt.Errorf("host %s: port %s is a tunnel port and cannot be isolated", m.cfg.HostUUID, p)
		}
		iso[p] = true
	}
	m.mu.Lock()
	same := m.told && maps.Equal(tm, m.tunnels) && maps.Equal(iso, m.isolated)
	if !same {
		m.tunnels, m.isolated, m.told = tm, iso, true
		m.gen++
		m.status.Generation = m.gen
	}
	gen := m.gen
	m.mu.Unlock()
	if !same {
		m.Refresh()
	}
	return gen, nil
}

// Refresh asks for a re-read (and re-apply) as soon as possible, e.g. on an OpenFlow port-status event.
func (m *Manager) Refresh() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Changed receives a value (coalesced) after the first read and whenever the datapath id or the interfaces read
// changed. It has one receiver: either the caller or Feed.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Interfaces returns the bridge's interfaces as last read, sorted by name.
func (m *Manager) Interfaces() []topology.Interface {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ifaces)
}

// DatapathID returns the bridge's datapath id (16 hex digits) as last read, "" while unknown.
func (m *Manager) DatapathID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dpid
}

// Feed copies the manager's datapath id and interfaces into v (View.SetHostOVSDB) after the first read and after
// every change, until ctx ends; then it clears them from v (View.ClearHostOVSDB). Run it on a goroutine of its
// own, alongside Run.
func (m *Manager) Feed(ctx context.Context, v *topology.View) {
	defer v.ClearHostOVSDB(m.cfg.HostUUID)
	push := func() {
		m.mu.Lock()
		ok, dpid, ifaces := m.haveRead, m.dpid, slices.Clone(m.ifaces)
		m.mu.Unlock()
		if ok {
			v.SetHostOVSDB(m.cfg.HostUUID, dpid, ifaces)
		}
	}
	push()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			push()
		}
	}
}

// Status returns the manager's status.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Run connects, converges and keeps the bridge converged until ctx ends. It reconnects with backoff whenever the
// connection fails. It returns nil when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	backoff := m.cfg.MinBackoff
	for {
		connected, err := m.session(ctx)
		m.mu.Lock()
		m.status.Connected = false
		if err != nil && ctx.Err() == nil {
			m.status.LastError = err.Error()
		}
		m.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = m.cfg.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		m.log.Warn("ovsdb connection failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, m.cfg.MaxBackoff)
	}
}

// session runs one connection. connected reports whether it got as far as connecting.
func (m *Manager) session(ctx context.Context) (connected bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	c, err := dial(dctx, m.cfg.Address, m.cfg.TLS)
	cancel()
	if err != nil {
		return false, err
	}
	defer c.close()
	m.mu.Lock()
	m.status.Connected = true
	m.status.Connects++
	m.mu.Unlock()
	m.log.Info("ovsdb connected")

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-c.dead():
			return true, fmt.Errorf("ovsdb %s: connection lost: %w", m.cfg.Address, c.tap.err())
		case <-m.wake:
		case <-timer.C:
		}
		next := m.cfg.ResyncInterval
		if err := m.sync(ctx, c); err != nil {
			var tx *TxError
			var rf *refusal
			if !errors.As(err, &tx) && !errors.As(err, &rf) {
				return true, err
			}
			// The server refused a change, or a change cannot be made: keep the connection, retry soon.
			m.log.Warn("ovsdb change refused", "err", err)
			m.mu.Lock()
			m.status.LastError = err.Error()
			m.mu.Unlock()
			next = min(next, time.Second)
		}
		if m.DatapathID() == "" {
			next = min(next, m.cfg.DatapathIDPoll)
		}
		timer.Reset(next)
	}
}

// refusal is a desired change that cannot be made without touching what is not ours.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// sync reads, applies what differs, and publishes what it read; it repeats (a bridge creation needs a second
// round) until nothing differs.
func (m *Manager) sync(ctx context.Context, c *client) error {
	m.mu.Lock()
	want := desired{tunnels: m.tunnels, isolated: m.isolated, told: m.told, targets: m.targets}
	gen := m.gen
	m.mu.Unlock()
	var refused []string
	for round := 0; ; round++ {
		st, err := m.read(ctx, c)
		if err != nil {
			return err
		}
		tx, ref := m.plan(st, want)
		if !m.isWritable() {
			m.publish(st)
			if len(tx.ops) > 0 {
				m.log.Debug("read-only: changes not applied", "changes", strings.Join(tx.whats, "; "))
			}
			m.mu.Lock()
			m.status.Pending = len(tx.ops) + len(ref)
			m.status.LastError = ""
			m.status.LastRead = time.Now()
			m.mu.Unlock()
			return nil
		}
		if len(tx.ops) == 0 || round == 4 {
			m.publish(st)
			refused = ref
			if len(tx.ops) != 0 {
				return &refusal{fmt.Sprintf("host %s: bridge %s did not converge after %d rounds", m.cfg.HostUUID, m.cfg.Bridge, round)}
			}
			break
		}
		sent, err := m.write(ctx, c, tx)
		if err != nil {
			m.publish(st)
			return err
		}
		if !sent {
			continue // read-only since the check above: the next round reads and publishes only
		}
		m.log.Info("ovsdb changes applied", "changes", strings.Join(tx.whats, "; "))
	}
	if len(refused) > 0 {
		return &refusal{strings.Join(refused, "; ")}
	}
	m.mu.Lock()
	m.status.Applied = gen
	m.status.LastError = ""
	m.status.LastSync = time.Now()
	m.status.LastRead = m.status.LastSync
	m.mu.Unlock()
	return nil
}

func (m *Manager) isWritable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writable
}

// write sends tx unless the manager is read-only; sent says whether it did. The check and the transaction hold
// wmu, which SetWritable takes too: no write starts, and none is still under way, once SetWritable(false) returns.
func (m *Manager) write(ctx context.Context, c *client, tx txn) (sent bool, err error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if !m.isWritable() {
		return false, nil
	}
	tctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	_, err = c.transact(tctx, tx.ops, tx.whats)
	return true, err
}

// state is what one read returned, rows by uuid.
type state struct {
	root        string
	bridges     map[string]row
	ports       map[string]row
	ifaces      map[string]row
	controllers map[string]row
	mirrors     map[string]row
}

func (s *state) byName(rows map[string]row, name string) (string, row) {
	for u, r := range rows {
		if r.str("name") == name {
			return u, r
		}
	}
	return "", nil
}

func (m *Manager) read(ctx context.Context, c *client) (*state, error) {
	ops := []ovsdb.TransactOp{
		opSelect{Table: "Open_vSwitch", Columns: []string{"_uuid", "bridges"}},
		opSelect{Table: "Bridge", Columns: []string{"_uuid", "name", "ports", "controller", "fail_mode", "protocols", "datapath_id", "datapath_type", "mirrors"}},
		opSelect{Table: "Port", Columns: []string{"_uuid", "name", "interfaces", "tag", "vlan_mode", "external_ids"}},
		opSelect{Table: "Interface", Columns: []string{"_uuid", "name", "type", "options", "ofport", "external_ids", "admin_state", "link_state"}},
		opSelect{Table: "Controller", Columns: []string{"_uuid", "target", "external_ids"}},
		opSelect{Table: "Mirror", Columns: []string{"_uuid", "output_port", "select_all", "select_src_port", "select_dst_port", "select_vlan", "external_ids"}},
	}
	tctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	res, err := c.transact(tctx, ops, []string{"read Open_vSwitch", "read Bridge", "read Port", "read Interface", "read Controller", "read Mirror"})
	if err != nil {
		return nil, err
	}
	idx := func(rows []row) map[string]row {
		out := make(map[string]row, len(rows))
		for _, r := range rows {
			out[r.uuid("_uuid")] = r
		}
		return out
	}
	st := &state{bridges: idx(res[1].Rows), ports: idx(res[2].Rows), ifaces: idx(res[3].Rows), controllers: idx(res[4].Rows),
		mirrors: idx(res[5].Rows)}
	if len(res[0].Rows) > 0 {
		st.root = res[0].Rows[0].uuid("_uuid")
	}
	return st, nil
}

// publish records the bridge's datapath id and interfaces, and signals when they changed.
func (m *Manager) publish(st *state) {
	dpid := ""
	var ifaces []topology.Interface
	if _, br := st.byName(st.bridges, m.cfg.Bridge); br != nil {
		if d, ok := model.NormalizeDatapathID(br.str("datapath_id")); ok {
			dpid = d
		}
		for _, pu := range br.uuidSet("ports") {
			for _, iu := range st.ports[pu].uuidSet("interfaces") {
				ir, ok := st.ifaces[iu]
				if !ok {
					continue
				}
				ext := ir.strMap("external_ids")
				ofport, ok := ir.optInt("ofport")
				if !ok {
					ofport = -1
				}
				ifaces = append(ifaces, topology.Interface{
					Name:        ir.str("name"),
					OFPort:      ofport,
					IfaceID:     ext["iface-id"],
					AttachedMAC: strings.ToLower(ext["attached-mac"]),
					AdminState:  ir.str("admin_state"),
					LinkState:   ir.str("link_state"),
					Type:        ir.str("type"),
				})
			}
		}
	}
	sort.Slice(ifaces, func(i, j int) bool { return ifaces[i].Name < ifaces[j].Name })
	m.mu.Lock()
	changed := dpid != m.dpid || !slices.Equal(ifaces, m.ifaces)
	m.dpid, m.ifaces = dpid, ifaces
	first := !m.haveRead
	m.haveRead = true
	m.mu.Unlock()
	changed = changed || first
	if changed {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

type txn struct {
	ops   []ovsdb.TransactOp
	whats []string
}

func (t *txn) add(what string, op ovsdb.TransactOp) {
	t.ops = append(t.ops, op)
	t.whats = append(t.whats, what)
}

// desired is what the bridge should hold, as one pass sees it.
type desired struct {
	tunnels  map[string]TunnelSpec // by port name
	isolated map[string]bool       // port names
	told     bool                  // tunnels and isolated are known; until then ours are left as they are
	targets  []string              // controller targets, sorted; empty leaves controllers alone
}

// plan computes the operations that bring the bridge to the desired state, and the desired changes it cannot
// make (they would touch what is not ours). Some changes take two rounds (the caller re-reads and re-plans after
// each transaction): a bridge is created before it is changed, and controllers are added before ours that are
// no longer wanted are removed.
func (m *Manager) plan(st *state, want desired) (txn, []string) {
	tunnels, isolated := want.tunnels, want.isolated
	var tx txn
	var refused []string
	bname := m.cfg.Bridge
	bu, br := st.byName(st.bridges, bname)
	if br == nil {
		if st.root == "" {
			return tx, []string{fmt.Sprintf("host %s: OVSDB %s has no Open_vSwitch row (run ovs-vsctl init): cannot create bridge %s", m.cfg.HostUUID, m.cfg.Address, bname)}
		}
		m.planCreateBridge(&tx, st, want.targets)
		return tx, nil
	}
	brWhere := []cond{eq("_uuid", uuidRef(bu))}

	// Bridge settings.
	if br.str("fail_mode") != "secure" || !slices.Equal(br.strSet("protocols"), []string{"OpenFlow13"}) {
		tx.add("set fail_mode=secure protocols=OpenFlow13 on bridge "+bname, opUpdate{Table: "Bridge", Where: brWhere,
			Row: map[string]any{"fail_mode": "secure", "protocols": oset{"OpenFlow13"}}})
	}

	// Controllers: ours only, exactly the wanted targets, never through zero.
	m.planControllers(&tx, st, bu, br, want.targets)
	if !want.told {
		// Nobody has said yet which tunnel ports and isolated ports the bridge needs (a restarted controller reads
		// its store before its first pass): ours stay as they are. Removing them now would renumber the tunnel
		// ports when they come back, and every flow that names them would have to be rewritten.
		return tx, refused
	}

	// Tunnel ports.
	have := map[string]bool{}
	for _, pu := range br.uuidSet("ports") {
		pr := st.ports[pu]
		fn := pr.strMap("external_ids")[KeyFlowNetwork]
		if fn == "" {
			continue
		}
		name := pr.str("name")
		spec, want := tunnels[name]
		if !want || spec.FlowNetworkUUID != fn || have[name] {
			tx.add("remove tunnel port "+name, opMutate{Table: "Bridge", Where: brWhere, Mutations: []mutation{{"ports", "delete", oset{uuidRef(pu)}}}})
			continue
		}
		have[name] = true
		for _, iu := range pr.uuidSet("interfaces") {
			ir := st.ifaces[iu]
			if ir.str("type") != spec.ovsType() || !maps.Equal(ir.strMap("options"), spec.options()) {
				tx.add(fmt.Sprintf("fix tunnel interface %s (%s local_ip=%s)", name, spec.ovsType(), spec.LocalIP), opUpdate{Table: "Interface",
					Where: []cond{eq("_uuid", uuidRef(iu))},
					Row:   map[string]any{"type": spec.ovsType(), "options": omap(spec.options())}})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tunnels)) {
		if have[name] {
			continue
		}
		spec := tunnels[name]
		if u, _ := st.byName(st.ports, name); u != "" {
			refused = append(refused, fmt.Sprintf("host %s: tunnel port %s of flow network %s: a port of that name exists and is not ours (no external_ids:%s=%s)",
				m.cfg.HostUUID, name, spec.FlowNetworkUUID, KeyFlowNetwork, spec.FlowNetworkUUID))
			continue
		}
		if u, _ := st.byName(st.ifaces, name); u != "" {
			refused = append(refused, fmt.Sprintf("host %s: tunnel port %s of flow network %s: an interface of that name exists and is not ours",
				m.cfg.HostUUID, name, spec.FlowNetworkUUID))
			continue
		}
		ext := omap{KeyFlowNetwork: spec.FlowNetworkUUID}
		in, pn := "i"+name, "p"+name
		tx.add("create tunnel interface "+name, opInsert{Table: "Interface", UUIDName: in,
			Row: map[string]any{"name": name, "type": spec.ovsType(), "options": omap(spec.options()), "external_ids": ext}})
		tx.add("create tunnel port "+name, opInsert{Table: "Port", UUIDName: pn,
			Row: map[string]any{"name": name, "interfaces": oset{namedRef(in)}, "external_ids": ext}})
		tx.add("add tunnel port "+name+" to bridge "+bname, opMutate{Table: "Bridge", Where: brWhere,
			Mutations: []mutation{{"ports", "insert", oset{namedRef(pn)}}}})
	}

	// Isolation (isolation.go).
	m.planIsolation(&tx, st, br, brWhere, isolated)
	return tx, refused
}

// planControllers adds the wanted targets that the bridge lacks; when none is missing, it removes ours that are
// not wanted (or that repeat a target). Adding and removing never share a transaction: the bridge keeps at least
// the controllers it had until the new ones are in, so it never goes through zero controllers (OVS would flush
// all its flows), and replacing A by B goes {A} -> {A,B} -> {B}. Rows without our mark are never touched.
func (m *Manager) planControllers(tx *txn, st *state, bu string, br row, targets []string) {
	if len(targets) == 0 {
		return
	}
	have := map[string]bool{}
	var extra oset
	var extraTargets []string
	for _, cu := range br.uuidSet("controller") {
		cr, ok := st.controllers[cu]
		if !ok || cr.strMap("external_ids")[KeyController] != "true" {
			continue
		}
		t := cr.str("target")
		if _, wanted := slices.BinarySearch(targets, t); wanted && !have[t] {
			have[t] = true
			continue
		}
		extra = append(extra, uuidRef(cu))
		extraTargets = append(extraTargets, t)
	}
	bname := m.cfg.Bridge
	brWhere := []cond{eq("_uuid", uuidRef(bu))}
	var missing []string
	for _, t := range targets {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	switch {
	case len(missing) > 0:
		refs := addControllers(tx, missing)
		tx.add(fmt.Sprintf("add controllers %s to bridge %s", strings.Join(missing, ", "), bname), opMutate{Table: "Bridge", Where: brWhere,
			Mutations: []mutation{{"controller", "insert", refs}}})
	case len(extra) > 0:
		slices.Sort(extraTargets)
		tx.add(fmt.Sprintf("remove controllers %s from bridge %s", strings.Join(extraTargets, ", "), bname), opMutate{Table: "Bridge", Where: brWhere,
			Mutations: []mutation{{"controller", "delete", extra}}})
	}
}

// addControllers inserts a Controller row of ours per target and returns references to them.
func addControllers(tx *txn, targets []string) oset {
	var refs oset
	for i, t := range targets {
		name := fmt.Sprintf("ctl%d", i)
		tx.add("create controller "+t, opInsert{Table: "Controller", UUIDName: name,
			Row: map[string]any{"target": t, "external_ids": omap{KeyController: "true"}}})
		refs = append(refs, namedRef(name))
	}
	return refs
}

// planCreateBridge creates the bridge with its internal port, already under all the controllers.
func (m *Manager) planCreateBridge(tx *txn, st *state, targets []string) {
	name := m.cfg.Bridge
	dt := m.cfg.DatapathType
	if dt == "" {
		var others []string
		for _, r := range st.bridges {
			others = append(others, r.str("name"))
		}
		sort.Strings(others)
		for _, o := range others {
			if _, r := st.byName(st.bridges, o); r != nil && r.str("datapath_type") != "" {
				dt = r.str("datapath_type")
				break
			}
		}
	}
	row := map[string]any{
		"name":          name,
		"ports":         oset{namedRef("brport")},
		"fail_mode":     "secure",
		"protocols":     oset{"OpenFlow13"},
		"datapath_type": dt,
	}
	if len(targets) > 0 {
		row["controller"] = addControllers(tx, targets)
	}
	tx.add("create interface "+name, opInsert{Table: "Interface", UUIDName: "briface", Row: map[string]any{"name": name, "type": "internal"}})
	tx.add("create port "+name, opInsert{Table: "Port", UUIDName: "brport", Row: map[string]any{"name": name, "interfaces": oset{namedRef("briface")}}})
	tx.add("create bridge "+name+" (datapath_type="+dt+")", opInsert{Table: "Bridge", UUIDName: "br", Row: row})
	tx.add("add bridge "+name+" to Open_vSwitch", opMutate{Table: "Open_vSwitch", Where: []cond{eq("_uuid", uuidRef(st.root))}, Mutations: []mutation{{"bridges", "insert", oset{namedRef("br")}}}})
}
