package bench

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the scale part's fleet child (it starts os.Executable, this binary, with
// FleetChildEnv set).
func TestMain(m *testing.M) {
	MaybeFleetChild()
	os.Exit(m.Run())
}
