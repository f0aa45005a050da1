package watcher

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the lab child when the lab tests start this binary as one
// (lab_test.go), and otherwise fails the package's tests when a goroutine
// they started is still running after the last one.
func TestMain(m *testing.M) {
	if spec := os.Getenv(labChildEnv); spec != "" {
		os.Exit(runLabChild(spec))
	}
	goleak.VerifyTestMain(m)
}
