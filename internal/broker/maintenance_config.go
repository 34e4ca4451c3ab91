package broker

import (
	"maps"
	"strconv"
	"time"
)

// maintenanceIntervals are the broker configs that pace retention and the cleaner, each with
// its Config field. Kafka reads them from server.properties only; here a static config
// (`serve --broker-config`) or the Config field (serve's flags) sets them.
var maintenanceIntervals = []struct {
	name  string
	field func(*Config) *time.Duration
}{
	{"log.retention.check.interval.ms", func(c *Config) *time.Duration { return &c.RetentionCheckInterval }},
	{"log.cleaner.backoff.ms", func(c *Config) *time.Duration { return &c.CleanerBackoff }},
}

// resolveMaintenanceIntervals fills the retention and cleaner intervals: a static config
// wins, then the Config field, then the default. The effective value is recorded as a
// static config so that DescribeConfigs reports what the node runs with.
// ValidateStaticConfigs has checked the static values.
func resolveMaintenanceIntervals(cfg *Config) error {
	defaults := DefaultConfig()
	static := maps.Clone(cfg.StaticConfigs)
	if static == nil {
		static = map[string]string{}
	}
	for _, iv := range maintenanceIntervals {
		field := iv.field(cfg)
		if v, ok := static[iv.name]; ok {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return err
			}
			*field = time.Duration(ms) * time.Millisecond
			continue
		}
		if *field <= 0 {
			*field = *iv.field(&defaults)
		}
		if *field != *iv.field(&defaults) {
			static[iv.name] = strconv.FormatInt(field.Milliseconds(), 10)
		}
	}
	cfg.StaticConfigs = static
	return nil
}
