package store

import (
	"cmp"
	"fmt"
	"slices"

	"portmirror/model"
)

// The kinds of objects the store holds, as they appear in keys and in Change.Kind.
const (
	KindCluster      = "Cluster"
	KindHost         = "Host"
	KindVmInstance   = "VmInstance"
	KindVmNic        = "VmNic"
	KindFlowNetwork  = "FlowNetwork"
	KindFlowEndpoint = "FlowEndpoint"
	KindPortMirror   = "PortMirror"
	KindSession      = "Session"
	// KindAll in a Change means "changes were dropped: re-read everything".
	KindAll = "All"
	// KindMeta in a Change means the cluster metadata changed (Store.Meta).
	KindMeta = "Meta"
)

// kinds lists every object kind, in load order.
var kinds = [...]string{KindCluster, KindHost, KindVmInstance, KindVmNic, KindFlowNetwork, KindFlowEndpoint,
	KindPortMirror, KindSession}

// The secondary indexes of the in-memory view: (kind, index name) → values of the object's fields.
const (
	IdxCluster     = "cluster"     // Host by ClusterUUID
	IdxDatapath    = "datapath"    // Host by DatapathID
	IdxHost        = "host"        // VmInstance by HostUUID, FlowEndpoint by HostUUID
	IdxVm          = "vm"          // VmNic by VmUUID
	IdxL3          = "l3"          // VmNic by L3NetworkUUID
	IdxFlowNetwork = "flowNetwork" // FlowEndpoint, PortMirror by FlowNetworkUUID
	IdxPortMirror  = "portMirror"  // Session by PortMirrorUUID
	IdxSource      = "source"      // Session by SourceNicUUID
	IdxDestination = "destination" // Session by DestinationNicUUID
)

// Object is any of the model types the store persists.
type Object interface {
	model.Cluster | model.Host | model.VmInstance | model.VmNic | model.FlowNetwork | model.FlowEndpoint |
		model.PortMirror | model.Session
}

// EndpointID is the id of a flow endpoint in the store and in Change.UUID: "<flow network uuid>/<host uuid>".
func EndpointID(flowNetworkUUID, hostUUID string) string { return flowNetworkUUID + "/" + hostUUID }

// kindOf returns the kind of a model object.
func kindOf(v any) string {
	switch v.(type) {
	case model.Cluster:
		return KindCluster
	case model.Host:
		return KindHost
	case model.VmInstance:
		return KindVmInstance
	case model.VmNic:
		return KindVmNic
	case model.FlowNetwork:
		return KindFlowNetwork
	case model.FlowEndpoint:
		return KindFlowEndpoint
	case model.PortMirror:
		return KindPortMirror
	case model.Session:
		return KindSession
	}
	panic(fmt.Sprintf("store: not a model object: %T", v))
}

// KindOf returns the kind constant of T.
func KindOf[T Object]() string {
	// A nil *T in an interface allocates nothing, where a zero T (a struct) would be copied to the heap on every
	// call: KindOf runs on every Get, List and Lookup, thousands of times for one page of the API.
	var p *T
	switch any(p).(type) {
	case *model.Cluster:
		return KindCluster
	case *model.Host:
		return KindHost
	case *model.VmInstance:
		return KindVmInstance
	case *model.VmNic:
		return KindVmNic
	case *model.FlowNetwork:
		return KindFlowNetwork
	case *model.FlowEndpoint:
		return KindFlowEndpoint
	case *model.PortMirror:
		return KindPortMirror
	case *model.Session:
		return KindSession
	}
	var zero T
	return kindOf(any(zero)) // panics: T is constrained to the cases above
}

// idOf returns the id of a model object.
func idOf(v any) string {
	switch o := v.(type) {
	case model.Cluster:
		return o.UUID
	case model.Host:
		return o.UUID
	case model.VmInstance:
		return o.UUID
	case model.VmNic:
		return o.UUID
	case model.FlowNetwork:
		return o.UUID
	case model.FlowEndpoint:
		return EndpointID(o.FlowNetworkUUID, o.HostUUID)
	case model.PortMirror:
		return o.UUID
	case model.Session:
		return o.UUID
	}
	panic(fmt.Sprintf("store: not a model object: %T", v))
}

// indexEntry is one secondary index value of an object.
type indexEntry struct{ name, value string }

// indexesOf lists the secondary index values of a model object; empty values are not indexed.
func indexesOf(v any) []indexEntry {
	var out []indexEntry
	add := func(name, value string) {
		if value != "" {
			out = append(out, indexEntry{name, value})
		}
	}
	switch o := v.(type) {
	case model.Host:
		add(IdxCluster, o.ClusterUUID)
		add(IdxDatapath, o.DatapathID)
	case model.VmInstance:
		add(IdxHost, o.HostUUID)
	case model.VmNic:
		add(IdxVm, o.VmUUID)
		add(IdxL3, o.L3NetworkUUID)
	case model.FlowEndpoint:
		add(IdxFlowNetwork, o.FlowNetworkUUID)
		add(IdxHost, o.HostUUID)
	case model.PortMirror:
		add(IdxFlowNetwork, o.FlowNetworkUUID)
	case model.Session:
		add(IdxPortMirror, o.PortMirrorUUID)
		add(IdxSource, o.SourceNicUUID)
		add(IdxDestination, o.DestinationNicUUID)
	}
	return out
}

// clone returns a deep copy of a model object, so that no caller shares memory with the in-memory view.
func clone(v any) any {
	switch o := v.(type) {
	case model.VmNic:
		if o.QoS != nil {
			q := *o.QoS
			if q.InboundBandwidthBps != nil {
				x := *q.InboundBandwidthBps
				q.InboundBandwidthBps = &x
			}
			if q.OutboundBandwidthBps != nil {
				x := *q.OutboundBandwidthBps
				q.OutboundBandwidthBps = &x
			}
			o.QoS = &q
		}
		return o
	case model.FlowNetwork:
		o.ClusterUUIDs = slices.Clone(o.ClusterUUIDs)
		return o
	}
	return v
}

// record is an object in the in-memory view with its creation sequence number (list order).
type record struct {
	seq uint64
	obj any
}

// table holds the objects of one kind.
type table struct {
	byID  map[string]*record
	order []*record                // by seq
	index map[indexEntry][]*record // the records of each index entry, by seq (a lookup reads no other map, sorts nothing)

	loadIDs []string // while loading: the id of each record of order, in the same place
}

func newTable() *table {
	return &table{byID: map[string]*record{}, index: map[indexEntry][]*record{}}
}

// bySeq orders records by their seq, which is unique within a store.
func bySeq(x *record, seq uint64) int { return cmp.Compare(x.seq, seq) }

func (t *table) put(id string, r *record) {
	if old, ok := t.byID[id]; ok {
		t.unindex(old)
		i := t.position(old.seq)
		t.order[i] = r
		r.seq = old.seq
	} else {
		// New records carry the greatest seq, except while loading; keep order sorted either way.
		i, _ := slices.BinarySearchFunc(t.order, r.seq, bySeq)
		t.order = slices.Insert(t.order, i, r)
	}
	t.byID[id] = r
	t.indexRecord(r)
}

// indexRecord enters r in the table's indexes, in seq order (at the end, unless r replaces an older record).
func (t *table) indexRecord(r *record) {
	for _, e := range indexesOf(r.obj) {
		recs := t.index[e]
		if n := len(recs); n == 0 || recs[n-1].seq < r.seq {
			t.index[e] = append(recs, r)
			continue
		}
		i, _ := slices.BinarySearchFunc(recs, r.seq, bySeq)
		t.index[e] = slices.Insert(recs, i, r)
	}
}

// load adds a record read from disk (each id once) at the end of the order, which sortLoaded puts right once
// every record is in: records come in key order, not in seq order (a uuid is random), and inserting each in seq
// order would move half the table every time.
func (t *table) load(id string, r *record) {
	t.order = append(t.order, r)
	t.loadIDs = append(t.loadIDs, id)
	for _, e := range indexesOf(r.obj) {
		t.index[e] = append(t.index[e], r)
	}
}

// sortLoaded fills byID (sized once, not grown record by record) and sorts the order and the indexes by seq after
// load.
func (t *table) sortLoaded() {
	t.byID = make(map[string]*record, len(t.order))
	for i, id := range t.loadIDs {
		t.byID[id] = t.order[i]
	}
	t.loadIDs = nil
	less := func(a, b *record) int { return cmp.Compare(a.seq, b.seq) }
	slices.SortFunc(t.order, less)
	for _, recs := range t.index {
		if !slices.IsSortedFunc(recs, less) {
			slices.SortFunc(recs, less)
		}
	}
}

func (t *table) remove(id string) {
	old, ok := t.byID[id]
	if !ok {
		return
	}
	t.unindex(old)
	i := t.position(old.seq)
	t.order = slices.Delete(t.order, i, i+1)
	delete(t.byID, id)
}

// unindex takes r out of the table's indexes.
func (t *table) unindex(r *record) {
	for _, e := range indexesOf(r.obj) {
		recs := t.index[e]
		i, ok := slices.BinarySearchFunc(recs, r.seq, bySeq)
		if !ok || recs[i] != r {
			panic("store: index out of sync")
		}
		if len(recs) == 1 {
			delete(t.index, e)
		} else {
			t.index[e] = slices.Delete(recs, i, i+1)
		}
	}
}

func (t *table) position(seq uint64) int {
	i, ok := slices.BinarySearchFunc(t.order, seq, bySeq)
	if !ok {
		panic("store: in-memory order out of sync")
	}
	return i
}
