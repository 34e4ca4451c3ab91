package streamjobs

import (
	"os"
	"testing"

	"github.com/strand-data/strand/test/harness"
)

// TestMain removes the binaries the tests built once they are done.
func TestMain(m *testing.M) {
	code := harness.Run(m)
	removeExamples()
	os.Exit(code)
}
