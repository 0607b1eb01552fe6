package fleet

import (
	"sync"

	"portmirror/simulator/dataplane"
)

// packetOutLog keeps the arrivals at VM NICs of frames a controller injected with PACKET_OUT.
type packetOutLog struct {
	mu       sync.Mutex
	arrivals []Arrival
	copies   int
}

// forwardPacketOut follows what a PACKET_OUT made h's bridge emit through the tunnels and the other bridges, as
// Send does for a frame a NIC sends (a PACKET_IN on the way reaches the controller from the bridge that sent it).
func (f *Fleet) forwardPacketOut(h *Host) func(dataplane.Result) {
	return func(res dataplane.Result) {
		var d Delivery
		f.collect(&d, f.Fabric.Forward(h.Name, res))
		f.packetOuts.mu.Lock()
		f.packetOuts.arrivals = append(f.packetOuts.arrivals, d.Arrivals...)
		f.packetOuts.copies += len(d.Copies)
		f.packetOuts.mu.Unlock()
	}
}

// PacketOutArrivals returns every arrival at a VM NIC (capture NICs included) of a frame injected with
// PACKET_OUT since the fleet was built, and how many frames those PACKET_OUTs made leave any port.
func (f *Fleet) PacketOutArrivals() ([]Arrival, int) {
	f.packetOuts.mu.Lock()
	defer f.packetOuts.mu.Unlock()
	return append([]Arrival(nil), f.packetOuts.arrivals...), f.packetOuts.copies
}
