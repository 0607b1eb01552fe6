package store

import "sync"

// Change tells a subscriber that an object was written or deleted. Kind is one of the Kind constants; KindAll
// (with no UUID) means changes were dropped because the subscriber fell behind: re-read everything. For a
// FlowEndpoint, UUID is EndpointID(flow network, host).
type Change struct {
	Kind    string
	UUID    string
	Deleted bool
}

// feed fans committed changes out to subscribers without ever blocking the writer.
type feed struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch       chan Change
	overflow bool          // under feed.mu: a change was dropped, a KindAll is owed
	poke     chan struct{} // cap 1: wakes the deliverer
	done     chan struct{}
	stopped  chan struct{}
}

func (f *feed) init() { f.subs = map[*subscriber]struct{}{} }

// Subscribe returns a channel of the changes committed from now on, with room for buf of them, and a function
// that ends the subscription and closes the channel. A subscriber that falls behind loses changes and then
// receives one Change{Kind: KindAll} as soon as it has room again.
func (s *Store) Subscribe(buf int) (<-chan Change, func()) {
	sub := &subscriber{
		ch:      make(chan Change, max(buf, 1)),
		poke:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.feed.mu.Lock()
	if s.feed.subs == nil { // closed
		s.feed.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	s.feed.subs[sub] = struct{}{}
	s.feed.mu.Unlock()
	go s.feed.deliverOverflow(sub)
	var once sync.Once
	return sub.ch, func() { once.Do(func() { s.feed.cancel(sub) }) }
}

// deliverOverflow is the subscriber's goroutine: it owes a KindAll after an overflow and blocks until there is
// room for it (or the subscription ends). It is stopped by cancel.
func (f *feed) deliverOverflow(sub *subscriber) {
	defer close(sub.stopped)
	for {
		select {
		case <-sub.done:
			return
		case <-sub.poke:
		}
		f.mu.Lock()
		owed := sub.overflow
		sub.overflow = false
		f.mu.Unlock()
		if !owed {
			continue
		}
		select {
		case sub.ch <- Change{Kind: KindAll}:
		case <-sub.done:
			return
		}
	}
}

func (f *feed) publish(changes []Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		if sub.overflow {
			continue // a KindAll is on its way and covers these
		}
		for _, c := range changes {
			select {
			case sub.ch <- c:
				continue
			default:
			}
			sub.overflow = true
			select {
			case sub.poke <- struct{}{}:
			default:
			}
			break
		}
	}
}

func (f *feed) cancel(sub *subscriber) {
	f.mu.Lock()
	_, ok := f.subs[sub]
	delete(f.subs, sub)
	f.mu.Unlock()
	if !ok {
		return // closeAll got it
	}
	close(sub.done)
	<-sub.stopped
	close(sub.ch)
}

func (f *feed) closeAll() {
	f.mu.Lock()
	subs := f.subs
	f.subs = nil
	f.mu.Unlock()
	for sub := range subs {
		close(sub.done)
		<-sub.stopped
		close(sub.ch)
	}
}
