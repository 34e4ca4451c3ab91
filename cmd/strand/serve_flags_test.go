package main

import "testing"

// A retention or cleaner interval given both as a flag and as the --broker-config it stands
// for is refused, so that neither silently wins; either alone is taken.
func TestServeIntervalFlagsAgreeWithBrokerConfigs(t *testing.T) {
	cases := []struct {
		args    []string
		static  map[string]string
		refused bool
	}{
		{[]string{"--log-cleaner-backoff", "1s"}, map[string]string{"log.cleaner.backoff.ms": "1000"}, true},
		{[]string{"--log-check-interval", "1m"}, map[string]string{"log.retention.check.interval.ms": "60000"}, true},
		{[]string{"--log-retention-check-interval", "1m"}, map[string]string{"log.retention.check.interval.ms": "60000"}, true},
		{[]string{"--log-retention-check-interval", "1m"}, map[string]string{"log.cleaner.backoff.ms": "1000"}, false},
		{nil, map[string]string{"log.cleaner.backoff.ms": "1000"}, false},
	}
	for _, tc := range cases {
		f := newServeCmd().Flags()
		if err := f.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if err := flagsAgreeWithBrokerConfigs(f, tc.static); (err != nil) != tc.refused {
			t.Errorf("%v with %v: err %v, refused want %v", tc.args, tc.static, err, tc.refused)
		}
	}
}
