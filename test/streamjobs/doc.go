// Package streamjobs holds black-box tests of the stream examples: real `strand serve`
// processes, the example programs built and run as processes, killed and restarted.
package streamjobs
