package testlog

import (
	"log/slog"
	"testing"
)

func TestLoggerWritesWhileTheTestRuns(t *testing.T) {
	var logger *slog.Logger
	t.Run("inner", func(t *testing.T) {
		logger = New(t, slog.LevelDebug)
		logger.Debug("seen in the test's output", "n", 1)
	})
	// After the subtest has finished, t.Output would panic; the record is
	// dropped instead.
	logger.Info("dropped")
}
