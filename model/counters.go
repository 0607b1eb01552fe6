package model

import "time"

// SessionCounters are what a session's switches counted: the frames it selected (its copies, bytes before
// truncation) and the copies its bandwidth cap dropped. UpdatedAt is when the switch was last read; zero before.
type SessionCounters struct {
	Packets        uint64
	Bytes          uint64
	DroppedByLimit uint64
	UpdatedAt      time.Time
}

// Add returns the sum of c and o; its UpdatedAt is the later of the two.
func (c SessionCounters) Add(o SessionCounters) SessionCounters {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.DroppedByLimit += o.DroppedByLimit
	if o.UpdatedAt.After(c.UpdatedAt) {
		c.UpdatedAt = o.UpdatedAt
	}
	return c
}
