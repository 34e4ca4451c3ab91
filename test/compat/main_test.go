package compat

import (
	"os"
	"testing"

	"github.com/strand-data/strand/test/harness"
)

// TestMain removes the strand binary the tests built once they are done.
func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
