package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// parseReplicaAssignment reads kafka-topics' --replica-assignment syntax: partitions
// separated by commas, each a colon-separated list of broker ids with the preferred leader
// first ("1:2:3,2:3:1" is partition 0 on 1,2,3 and partition 1 on 2,3,1).
func parseReplicaAssignment(s string) ([][]int32, error) {
	var out [][]int32
	for i, part := range strings.Split(s, ",") {
		var replicas []int32
		for _, id := range strings.Split(strings.TrimSpace(part), ":") {
			n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--replica-assignment %q: partition %d: %q is not a broker id", s, i, id)
			}
			replicas = append(replicas, int32(n))
		}
		out = append(out, replicas)
	}
	return out, nil
}

// createAssignedTopic creates a topic whose replicas are placed by hand (kadm has no call
// for it, so the request is built here).
func createAssignedTopic(cmd *cobra.Command, name string, assignment [][]int32, configs map[string]*string) error {
	cl, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, -1, -1
	for p, replicas := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	got := resp.Topics[0]
	if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
		msg := ""
		if got.ErrorMessage != nil {
			msg = *got.ErrorMessage
		}
		return fmt.Errorf("create %s: %w%s", name, err, detail(msg))
	}
	fmt.Printf("created topic %s with %d partitions\n", name, got.NumPartitions)
	return nil
}
