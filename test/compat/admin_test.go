package compat

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strand-data/strand/test/harness"
)

// TestPythonAdmin: kafka-python and confluent-kafka place replicas by hand (CreateTopics,
// CreatePartitions), are refused a bad assignment with INVALID_REPLICA_ASSIGNMENT, and see
// auto-created topics take `serve --broker-config num.partitions=3`.
func TestPythonAdmin(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	for _, client := range []string{"kafka-python", "confluent-kafka"} {
		t.Run(client, func(t *testing.T) {
			needPythonClient(t, python, client)
			node := harness.Start(t, harness.Options{Args: []string{"--broker-config", "num.partitions=3"}})
			out := run(t, "", python, filepath.Join("testdata", "python_admin.py"), node.KafkaAddr, client, "admin-"+client)
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}
