package controller

import (
	"fmt"
	"testing"
	"time"
)

// TestExpiryScheduleOrderAndBound: the schedule hands out the earliest live entry first, skips what was changed or
// removed, and its heap stays bounded however often entries change.
func TestExpiryScheduleOrderAndBound(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &expiry{entries: map[string]expiryEntry{}}
	at := func(s int) expiryEntry {
		return expiryEntry{at: t0.Add(time.Duration(s) * time.Second), next: t0.Add(time.Duration(s) * time.Second)}
	}
	for i := range 100 {
		e.set(fmt.Sprintf("s%d", i), at(1000+i))
	}
	// s0 moves again and again, ending last; s1 goes; s2 comes first.
	for k := range 10_000 {
		e.set("s0", at(5000+k))
	}
	delete(e.entries, "s1")
	e.set("s2", at(10))
	if len(e.queue) > 2*len(e.entries)+64 {
		t.Errorf("heap of %d items for %d entries", len(e.queue), len(e.entries))
	}
	var order []string
	for {
		it, ok := e.earliest()
		if !ok {
			break
		}
		order = append(order, it.uuid)
		delete(e.entries, it.uuid)
	}
	if len(order) != 99 || order[0] != "s2" || order[1] != "s3" || order[len(order)-1] != "s0" {
		t.Errorf("order %v: want 99 entries, s2 first, then s3, s0 last", order)
	}
}
