package controller

import (
	"math/rand/v2"

	"portmirror/flows"
)

// randomErspanSets returns the ERSPAN set_fields of a copy of a random version with random header values.
func randomErspanSets(r *rand.Rand) []flows.Action {
	if r.IntN(2) == 0 {
		return []flows.Action{{Type: flows.ActSetErspanVer, Value: 1}, {Type: flows.ActSetErspanIdx, Value: uint64(r.IntN(1 << 20))}}
	}
	return []flows.Action{{Type: flows.ActSetErspanVer, Value: 2}, {Type: flows.ActSetErspanDir, Value: uint64(r.IntN(2))},
		{Type: flows.ActSetErspanHwid, Value: uint64(r.IntN(64))}}
}
