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
	subs map[*subscriber]struct{} // nil once closed
}

// subscriber holds up to buf changes in its queue; its goroutine hands them to the subscriber's channel one by
// one. When the queue is full a change is dropped and overflow is set; once the queue has drained, the goroutine
// delivers one KindAll. Because the goroutine takes the KindAll and clears overflow under mu, every dropped
// change was committed before the subscriber can receive that KindAll.
type subscriber struct {
	out  chan Change
	buf  int
	poke chan struct{} // cap 1: wakes the goroutine

	mu       sync.Mutex
	queue    []Change
	overflow bool

	done    chan struct{}
	stopped chan struct{}
}

func (f *feed) init() { f.subs = map[*subscriber]struct{}{} }

// Subscribe returns a channel of the changes committed from now on, holding up to buf of them for a slow reader,
// and a function that ends the subscription and closes the channel (Close ends every subscription too). A
// subscriber that falls behind loses changes and then receives one Change{Kind: KindAll} as soon as it has read
// what was queued before.
func (s *Store) Subscribe(buf int) (<-chan Change, func()) {
	sub := &subscriber{
		out:     make(chan Change),
		buf:     max(buf, 1),
		poke:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.feed.mu.Lock()
	if s.feed.subs == nil { // closed
		s.feed.mu.Unlock()
		close(sub.out)
		return sub.out, func() {}
	}
	s.feed.subs[sub] = struct{}{}
	s.feed.mu.Unlock()
	go sub.run()
	return sub.out, func() { s.feed.cancel(sub) }
}

// run is the subscriber's goroutine, owned by the subscription: cancel and Close stop it.
func (sub *subscriber) run() {
	defer close(sub.stopped)
	defer close(sub.out)
	for {
		sub.mu.Lock()
		var c Change
		have := true
		switch {
		case len(sub.queue) > 0:
			c = sub.queue[0]
			sub.queue[0] = Change{}
			sub.queue = sub.queue[1:]
		case sub.overflow:
			c = Change{Kind: KindAll}
			sub.overflow = false
		default:
			have = false
		}
		sub.mu.Unlock()
		if !have {
			select {
			case <-sub.poke:
				continue
			case <-sub.done:
				return
			}
		}
		select {
		case sub.out <- c:
		case <-sub.done:
			return
		}
	}
}

func (f *feed) publish(changes []Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		sub.mu.Lock()
		for _, c := range changes {
			if sub.overflow {
				break // the KindAll to come covers the rest
			}
			if len(sub.queue) >= sub.buf {
				sub.overflow = true
				sub.queue = nil // a KindAll supersedes what is queued
				break
			}
			sub.queue = append(sub.queue, c)
		}
		sub.mu.Unlock()
		select {
		case sub.poke <- struct{}{}:
		default:
		}
	}
}

func (f *feed) cancel(sub *subscriber) {
	f.mu.Lock()
	_, ok := f.subs[sub]
	delete(f.subs, sub)
	f.mu.Unlock()
	if ok {
		close(sub.done)
		<-sub.stopped
	}
}

func (f *feed) closeAll() {
	f.mu.Lock()
	subs := f.subs
	f.subs = nil
	f.mu.Unlock()
	for sub := range subs {
		close(sub.done)
		<-sub.stopped
	}
}
