// Package simulator holds simulated OVS bridges for tests and load: dataplane (a pure flow-table and NORMAL
// evaluator), ofsim (a bridge as an OpenFlow 1.3 switch over TCP, to one controller or several) and fabric (hosts joined by flow-based tunnels,
// packet injection and tracing). It never imports the controller: tests reach it through the wire.
package simulator
