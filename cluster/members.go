package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"portmirror/model"
	"portmirror/store"
)

// Keys of the cluster's metadata in the replicated store.
const (
	metaSecret       = "cluster/secret"  // shared by the members: authenticates forwarded requests
	metaMemberPrefix = "cluster/member/" // + node id → memberRecord as JSON
)

// memberRecord is what a member publishes of itself in the replicated state.
type memberRecord struct {
	APIAddress      string `json:"apiAddress,omitempty"`
	OpenFlowAddress string `json:"openflowAddress,omitempty"`
}

// Member is one controller of the cluster as this node sees it.
type Member struct {
	ID              string
	RaftAddress     string
	APIAddress      string
	OpenFlowAddress string
	Role            string // LEADER, FOLLOWER, CANDIDATE or UNREACHABLE
	Self            bool
	Voter           bool
	LastContact     time.Time // zero when unknown
}

func (n *Node) record(id string) (memberRecord, bool) {
	v, ok := n.st.Meta(metaMemberPrefix + id)
	if !ok {
		return memberRecord{}, false
	}
	var r memberRecord
	if json.Unmarshal([]byte(v), &r) != nil {
		return memberRecord{}, false
	}
	return r, true
}

// Secret is the members' shared secret ("" until this node has applied the leader's first write).
func (n *Node) Secret() string {
	v, _ := n.st.Meta(metaSecret)
	return v
}

// CheckSecret reports whether s is the members' secret, in constant time.
func (n *Node) CheckSecret(s string) bool {
	secret := n.Secret()
	return secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s)) == 1
}

// LeaderAPI is the leader's API URL as it published it, and whether one is known.
func (n *Node) LeaderAPI() (string, bool) {
	id := n.Leader()
	if id == "" || id == n.opts.NodeID {
		return "", false
	}
	r, ok := n.record(id)
	if !ok || r.APIAddress == "" {
		return "", false
	}
	return r.APIAddress, true
}

// OpenFlowTargets is every member's published OpenFlow target, sorted: the controller targets of managed bridges.
func (n *Node) OpenFlowTargets() []string {
	var out []string
	for _, v := range n.st.MetaWithPrefix(metaMemberPrefix) {
		var r memberRecord
		if json.Unmarshal([]byte(v), &r) == nil && r.OpenFlowAddress != "" {
			out = append(out, r.OpenFlowAddress)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// publishSelf makes sure the replicated state holds the cluster secret (the leader creates it) and this node's
// addresses: the leader writes them itself, a follower asks the leader.
func (n *Node) publishSelf(ctx context.Context) {
	want := memberRecord{APIAddress: n.opts.APIAdvertise, OpenFlowAddress: n.opts.OpenFlowAdvertise}
	have, ok := n.record(n.opts.NodeID)
	if leading, _ := n.Leading(); leading {
		needSecret := n.Secret() == ""
		if ok && have == want && !needSecret {
			return
		}
		err := n.st.Update(ctx, func(tx *store.Txn) error {
			if needSecret {
				b := make([]byte, 32)
				if _, err := rand.Read(b); err != nil {
					return err
				}
				tx.SetMeta(metaSecret, hex.EncodeToString(b))
			}
			v, _ := json.Marshal(want)
			tx.SetMeta(metaMemberPrefix+n.opts.NodeID, string(v))
			return nil
		})
		if err != nil {
			n.log.Warn("publishing this controller's addresses failed", "err", err)
		}
		return
	}
	if ok && have == want {
		return
	}
	api, okAPI := n.LeaderAPI()
	secret := n.Secret()
	if !okAPI || secret == "" {
		return // not caught up yet; the next tick tries again
	}
	body, _ := json.Marshal(want)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPut, strings.TrimRight(api, "/")+"/cluster/v1/members/"+n.opts.NodeID, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSecret, secret)
	resp, err := n.httpClient().Do(req)
	if err != nil {
		n.log.Debug("publishing this controller's addresses through the leader failed", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		n.log.Warn("the leader refused this controller's addresses", "status", resp.Status)
	}
}

// httpClient is the client of requests to other members (mutual TLS with --cluster-tls-*).
func (n *Node) httpClient() *http.Client {
	n.clientOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		if n.opts.TLS != nil {
			tr.TLSClientConfig = n.opts.TLS.Client.Clone()
		}
		n.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	})
	return n.client
}

// HTTPTransport is the transport of requests to other members: the API forwards through it.
func (n *Node) HTTPTransport() http.RoundTripper { return n.httpClient().Transport }

// HeaderSecret carries the members' secret on requests between controllers.
const HeaderSecret = "X-Portmirror-Cluster-Secret"

// ServeHTTP serves the members' internal endpoint: PUT /cluster/v1/members/<id> with a memberRecord, from a
// member that publishes its addresses through the leader.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/cluster/v1/members/")
	if !ok || r.Method != http.MethodPut {
		http.NotFound(w, r)
		return
	}
	if !n.CheckSecret(r.Header.Get(HeaderSecret)) {
		http.Error(w, "not a member of this cluster", http.StatusForbidden)
		return
	}
	if err := ValidateNodeID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var rec memberRecord
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&rec); err != nil {
		http.Error(w, "bad member record: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !n.isMember(id) {
		http.Error(w, fmt.Sprintf("controller %s is not a member of the cluster", id), http.StatusConflict)
		return
	}
	err := n.st.Update(r.Context(), func(tx *store.Txn) error {
		v, _ := json.Marshal(rec)
		tx.SetMeta(metaMemberPrefix+id, string(v))
		return nil
	})
	if err != nil {
		var un *store.UnavailableError
		if errors.As(err, &un) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) isMember(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// Members implements service.Membership: the cluster's members with their roles as this node sees them. self
// names the node the caller asked (the one that forwarded the request here); "" is this one.
func (n *Node) Members(_ context.Context, self string) ([]model.ControllerNode, error) {
	ms, err := n.members(self)
	if err != nil {
		return nil, err
	}
	out := make([]model.ControllerNode, len(ms))
	for i, m := range ms {
		out[i] = model.ControllerNode{ID: m.ID, RaftAddress: m.RaftAddress, APIAddress: m.APIAddress,
			OpenFlowAddress: m.OpenFlowAddress, Role: m.Role, Self: m.Self}
		if !m.LastContact.IsZero() {
			t := m.LastContact.UTC()
			out[i].LastContact = &t
		}
	}
	return out, nil
}

func (n *Node) members(self string) ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("cluster: read the membership: %w", err)
	}
	if self == "" {
		self = n.opts.NodeID
	}
	leader := n.Leader()
	leading := n.raft.State() == raft.Leader
	n.mu.Lock()
	contact := maps(n.peerContact)
	n.mu.Unlock()
	var out []Member
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		m := Member{ID: id, RaftAddress: string(s.Address), Self: id == self, Voter: s.Suffrage == raft.Voter}
		if r, ok := n.record(id); ok {
			m.APIAddress, m.OpenFlowAddress = r.APIAddress, r.OpenFlowAddress
		}
		switch {
		case id == n.opts.NodeID:
			m.Role = n.Role()
			m.LastContact = time.Now()
		case id == leader:
			m.Role = "LEADER"
			m.LastContact = n.raft.LastContact()
		case leading:
			h, seen := contact[id]
			m.Role, m.LastContact = "FOLLOWER", time.Now()
			if seen && h.failing {
				m.Role, m.LastContact = "UNREACHABLE", h.lastContact
			}
		default:
			// a follower does not hear from the other followers; without a leader it hears from nobody
			m.Role = "FOLLOWER"
			if leader == "" {
				m.Role = "UNREACHABLE"
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func maps(m map[string]peerHealth) map[string]peerHealth {
	out := make(map[string]peerHealth, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// AddVoter adds a controller to the cluster (it must run with the same cluster's --peers or none, and a new data
// directory); only the leader can.
func (n *Node) AddVoter(ctx context.Context, id, raftAddress string) error {
	if err := ValidateNodeID(id); err != nil {
		return err
	}
	if ok, _ := n.Leading(); !ok {
		return &store.UnavailableError{Reason: n.notLeadingReason()}
	}
	f := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddress), 0, n.opts.ApplyTimeout)
	if err := waitFuture(ctx, f); err != nil {
		return fmt.Errorf("add controller %s at %s: %w", id, raftAddress, err)
	}
	n.log.Info("controller added to the cluster", "node", id, "raft_address", raftAddress)
	return nil
}

// RemoveServer removes a controller from the cluster and its published addresses; only the leader can. A leader
// removing itself steps down.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if ok, _ := n.Leading(); !ok {
		return &store.UnavailableError{Reason: n.notLeadingReason()}
	}
	if !n.isMember(id) {
		return fmt.Errorf("controller %s is not a member of the cluster", id)
	}
	// the record first: once removed, a leader removing itself can no longer write
	if err := n.st.Update(ctx, func(tx *store.Txn) error {
		tx.SetMeta(metaMemberPrefix+id, "")
		return nil
	}); err != nil {
		return err
	}
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.opts.ApplyTimeout)
	if err := waitFuture(ctx, f); err != nil {
		return fmt.Errorf("remove controller %s: %w", id, err)
	}
	n.log.Info("controller removed from the cluster", "node", id)
	return nil
}

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return &store.UnavailableError{Unknown: true, Reason: ctx.Err().Error()}
	}
}

// routeWait bounds how long Route waits for a leader during an election, or for a new leader to catch up.
const routeWait = 3 * time.Second

// Route implements the API's routing (graphql.Cluster): here when this node leads and a majority confirms it;
// the leader's API when another node leads; otherwise, after waiting out an election, why no leader can serve.
func (n *Node) Route(ctx context.Context) (leaderURL, stale string) {
	deadline := time.Now().Add(routeWait)
	for {
		if ok, _ := n.Leading(); ok {
			vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := n.VerifyLeader(vctx)
			cancel()
			if err == nil {
				return "", ""
			}
			return "", fmt.Sprintf("this controller leads but no majority of the controllers confirmed it (%v)", err)
		}
		if url, ok := n.LeaderAPI(); ok && n.Secret() != "" {
			return url, ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", n.notLeadingReason()
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Health is what GET /healthz tells of the cluster: this node's role, the leader, and whether there is one.
func (n *Node) Health() map[string]any {
	return map[string]any{"nodeId": n.opts.NodeID, "role": n.Role(), "leader": n.Leader(), "term": n.raft.CurrentTerm()}
}

// HealthCheck fails while the cluster has no leader that this node knows.
func (n *Node) HealthCheck(context.Context) error {
	if n.Leader() == "" {
		return errors.New("no leader: no majority of the controllers is reachable from this one")
	}
	return nil
}
