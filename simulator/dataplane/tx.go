package dataplane

import (
	"errors"
	"maps"
)

// ErrTxDone is what a Tx's methods return once the function Atomically ran it in has returned.
var ErrTxDone = errors.New("dataplane: the transaction is over")

// Tx is a change to a bridge's flow tables and groups that Atomically applies all at once or not at all. Its
// methods have the semantics of the Bridge's methods of the same names, and each sees the changes made before it
// in the same transaction.
type Tx struct {
	b      *Bridge
	tables map[uint8][]*Flow // the tables before the transaction; their slices are never written while it runs
	groups map[uint32]*Group // the groups before the transaction
	copied [256]bool         // tables the transaction has already copied (Bridge.writable)
	over   bool
}

// Atomically runs fn with the bridge locked: Process, Trace and every other method wait until it returns, so no
// frame ever meets part of the change. When fn returns an error (or panics) the flow tables and groups are put
// back exactly as they were, counters included, and the error is returned. fn must not call the bridge's own
// methods (the lock is held), only tx's.
func (b *Bridge) Atomically(fn func(tx *Tx) error) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tx := &Tx{b: b, tables: maps.Clone(b.tables), groups: maps.Clone(b.groups)}
	b.tx = tx
	committed := false
	defer func() {
		tx.over = true
		b.tx = nil
		if !committed {
			// Only pointers and slices the transaction made were written: the saved maps still hold the
			// original flows, untouched.
			b.tables, b.groups = tx.tables, tx.groups
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	return nil
}

// AddFlow adds a flow, as Bridge.AddFlow.
func (tx *Tx) AddFlow(f Flow, checkOverlap bool) error {
	if tx.over {
		return ErrTxDone
	}
	return tx.b.addFlowLocked(f, checkOverlap)
}

// ModifyFlows changes the selected flows, as Bridge.ModifyFlows.
func (tx *Tx) ModifyFlows(ff FlowFilter, f Flow) (int, error) {
	if tx.over {
		return 0, ErrTxDone
	}
	return tx.b.modifyFlowsLocked(ff, f)
}

// DeleteFlows removes the selected flows, as Bridge.DeleteFlows.
func (tx *Tx) DeleteFlows(ff FlowFilter) ([]Flow, error) {
	if tx.over {
		return nil, ErrTxDone
	}
	return tx.b.deleteFlowsLocked(ff)
}

// ModGroup applies a group-mod, as Bridge.ModGroup.
func (tx *Tx) ModGroup(cmd uint16, g Group) error {
	if tx.over {
		return ErrTxDone
	}
	return tx.b.modGroupLocked(cmd, g)
}

// Flows returns copies of the selected flows as the transaction has left them so far, as Bridge.Flows.
func (tx *Tx) Flows(ff FlowFilter) []Flow {
	if tx.over {
		return nil
	}
	return tx.b.flowsLocked(ff)
}
